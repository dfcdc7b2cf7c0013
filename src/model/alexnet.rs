//! AlexNet as torchvision lays it out, with configurable widths so that both
//! torchvision's (64, 192, 384, 256, 256) and the course's HW variant
//! (64, 192, 384, 384, 256) — and tiny test versions — are the same code.
//!
//! Every torchvision module output can be tapped (`features.N`,
//! `avgpool`, `classifier.N`), plus the HW2 names for the five taps the
//! homework compares. Taps are flattened per image, as HW2 does.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Widths and head of an AlexNet. `widths` are the five conv layers' output channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlexNetConfig {
    pub widths: [usize; 5],
    pub hidden: usize,
    pub num_classes: usize,
    /// Used only in training; extraction runs in eval mode, where dropout is the identity.
    pub dropout: f64,
}

impl AlexNetConfig {
    pub fn torchvision() -> Self {
        AlexNetConfig {
            widths: [64, 192, 384, 256, 256],
            hidden: 4096,
            num_classes: 1000,
            dropout: 0.5,
        }
    }

    /// The HW checkpoints' layout: conv4 is 384→384 and conv5 384→256.
    pub fn hw() -> Self {
        AlexNetConfig {
            widths: [64, 192, 384, 384, 256],
            ..Self::torchvision()
        }
    }

    /// Flattened width of a module's output for a 224×224 input (both
    /// preprocessings give 224), for memory budgeting before anything runs.
    pub fn tap_width(&self, module: &str) -> usize {
        let [c1, c2, c3, c4, c5] = self.widths;
        match module {
            "features.0" | "features.1" => c1 * 55 * 55,
            "features.2" => c1 * 27 * 27,
            "features.3" | "features.4" => c2 * 27 * 27,
            "features.5" => c2 * 13 * 13,
            "features.6" | "features.7" => c3 * 13 * 13,
            "features.8" | "features.9" => c4 * 13 * 13,
            "features.10" | "features.11" => c5 * 13 * 13,
            "features.12" | "avgpool" | "classifier.0" => c5 * 36,
            "classifier.6" => self.num_classes,
            _ => self.hidden,
        }
    }

    pub fn init(&self, device: &Device) -> AlexNet {
        let [c1, c2, c3, c4, c5] = self.widths;
        let conv = |i: usize, o: usize, k: usize, s: usize, p: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(device)
        };
        AlexNet {
            conv1: conv(3, c1, 11, 4, 2),
            conv2: conv(c1, c2, 5, 1, 2),
            conv3: conv(c2, c3, 3, 1, 1),
            conv4: conv(c3, c4, 3, 1, 1),
            conv5: conv(c4, c5, 3, 1, 1),
            pool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init(),
            avgpool: AdaptiveAvgPool2dConfig::new([6, 6]).init(),
            fc1: LinearConfig::new(c5 * 36, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.hidden).init(device),
            fc3: LinearConfig::new(self.hidden, self.num_classes).init(device),
            relu: Relu::new(),
        }
    }
}

#[derive(Module, Debug)]
pub struct AlexNet {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub conv4: Conv2d,
    pub conv5: Conv2d,
    pub pool: MaxPool2d,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    pub relu: Relu,
}

/// torchvision's module names, in forward order. `classifier.0` and
/// `classifier.3` are Dropout (the identity in eval mode).
pub const MODULES: [&str; 21] = [
    "features.0",
    "features.1",
    "features.2",
    "features.3",
    "features.4",
    "features.5",
    "features.6",
    "features.7",
    "features.8",
    "features.9",
    "features.10",
    "features.11",
    "features.12",
    "avgpool",
    "classifier.0",
    "classifier.1",
    "classifier.2",
    "classifier.3",
    "classifier.4",
    "classifier.5",
    "classifier.6",
];

/// The HW2 tap names and the module whose output each one is.
pub const HW2_TAPS: [(&str, &str); 5] = [
    ("conv_pool_after_layer2", "features.2"),
    ("conv_pool_after_layer_5", "features.5"),
    ("conv_pool_after_layer_12", "features.12"),
    ("fc1", "classifier.1"),
    ("fc2", "classifier.4"),
];

/// Each conv layer's output after its ReLU, by the layer's name: the Kay V4
/// project's `convnet.layers['conv3']` (tfutils convolutions end in a ReLU).
pub const CONV_TAPS: [(&str, &str); 5] = [
    ("conv1", "features.1"),
    ("conv2", "features.4"),
    ("conv3", "features.7"),
    ("conv4", "features.9"),
    ("conv5", "features.11"),
];

/// The torchvision module a tap name refers to, or None if it names nothing.
pub fn resolve_tap(name: &str) -> Option<&'static str> {
    HW2_TAPS
        .iter()
        .chain(&CONV_TAPS)
        .find(|(alias, _)| *alias == name)
        .map(|(_, m)| *m)
        .or_else(|| MODULES.iter().find(|m| **m == name).copied())
}

impl AlexNet {
    /// Runs the net up to the deepest requested module and returns each
    /// requested module's output flattened to images × features, in `wanted` order.
    pub fn forward_taps(&self, x: Tensor<4>, wanted: &[&str]) -> Vec<Tensor<2>> {
        self.run(x, wanted, 0.0)
    }

    /// torchvision's forward with `classifier.0` and `classifier.3` as
    /// Dropout(p). Dropout only acts on an autodiff device (training); on a
    /// plain device this is `forward`.
    fn run(&self, x: Tensor<4>, wanted: &[&str], dropout: f64) -> Vec<Tensor<2>> {
        let drop = DropoutConfig::new(dropout).init();
        let last = wanted
            .iter()
            .filter_map(|w| MODULES.iter().position(|m| m == w))
            .max()
            .unwrap_or(0);
        let mut got: Vec<Option<Tensor<2>>> = vec![None; wanted.len()];
        let mut keep = |idx: usize, t: &dyn Fn() -> Tensor<2>| {
            for (slot, w) in got.iter_mut().zip(wanted) {
                if *w == MODULES[idx] {
                    *slot = Some(t());
                }
            }
        };
        let flat4 = |t: &Tensor<4>| t.clone().flatten::<2>(1, 3);
        let convs = [
            &self.conv1,
            &self.conv2,
            &self.conv3,
            &self.conv4,
            &self.conv5,
        ];
        // (conv, relu, pool?) blocks at module indices 0..=12.
        let layout: [(usize, Option<usize>); 5] = [
            (0, Some(2)),
            (3, Some(5)),
            (6, None),
            (8, None),
            (10, Some(12)),
        ];
        let mut h = x;
        for (conv, (at, pool_at)) in convs.iter().zip(layout) {
            if at > last {
                return got.into_iter().map(|t| t.expect("tap computed")).collect();
            }
            h = conv.forward(h);
            keep(at, &|| flat4(&h));
            h = self.relu.forward(h);
            keep(at + 1, &|| flat4(&h));
            if let Some(p) = pool_at {
                h = self.pool.forward(h);
                keep(p, &|| flat4(&h));
            }
        }
        if last >= 13 {
            let pooled = self.avgpool.forward(h);
            let z = pooled.flatten::<2>(1, 3);
            keep(13, &|| z.clone());
            let z = drop.forward(z);
            keep(14, &|| z.clone());
            let a = self.fc1.forward(z);
            keep(15, &|| a.clone());
            let a = self.relu.forward(a);
            keep(16, &|| a.clone());
            let a = drop.forward(a);
            keep(17, &|| a.clone());
            if last >= 18 {
                let b = self.fc2.forward(a);
                keep(18, &|| b.clone());
                let b = self.relu.forward(b);
                keep(19, &|| b.clone());
                if last >= 20 {
                    let c = self.fc3.forward(b);
                    keep(20, &|| c.clone());
                }
            }
        }
        got.into_iter().map(|t| t.expect("tap computed")).collect()
    }

    /// Logits in eval mode (no dropout).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_taps(x, &["classifier.6"])
            .pop()
            .expect("one output")
    }

    /// Logits in train mode: Dropout(p) before fc1 and fc2, as torchvision.
    pub fn forward_train(&self, x: Tensor<4>, dropout: f64) -> Tensor<2> {
        self.run(x, &["classifier.6"], dropout)
            .pop()
            .expect("one output")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_resolve() {
        assert_eq!(resolve_tap("fc1"), Some("classifier.1"));
        assert_eq!(resolve_tap("conv_pool_after_layer_12"), Some("features.12"));
        assert_eq!(resolve_tap("features.8"), Some("features.8"));
        // Each conv after its ReLU (the Kay V4 project's conv3).
        assert_eq!(resolve_tap("conv3"), Some("features.7"));
        assert_eq!(resolve_tap("conv6"), None);
    }

    #[test]
    fn tap_shapes_follow_the_layout() {
        let device = Device::flex();
        let cfg = AlexNetConfig {
            widths: [4, 6, 8, 8, 5],
            hidden: 16,
            num_classes: 3,
            dropout: 0.5,
        };
        let net = cfg.init(&device);
        let x = Tensor::<4>::zeros([2, 3, 224, 224], &device);
        let taps = net.forward_taps(
            x,
            &[
                "features.2",
                "conv_pool_after_layer_5",
                "features.12",
                "classifier.4",
                "classifier.6",
            ]
            .map(|t| resolve_tap(t).unwrap()),
        );
        let dims: Vec<[usize; 2]> = taps.iter().map(|t| t.dims()).collect();
        assert_eq!(
            dims,
            vec![
                [2, 4 * 27 * 27],
                [2, 6 * 13 * 13],
                [2, 5 * 6 * 6],
                [2, 16],
                [2, 3]
            ]
        );
    }
}

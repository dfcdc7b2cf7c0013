//! A small net declared layer by layer (`arch = "sequential"`): conv2d,
//! maxpool2d, relu, sigmoid, flatten and linear layers in order, as a
//! student writes seed 004's `CNN` in PyTorch. Every layer has a name; the
//! names are the taps and the state-dict keys (`conv.weight`, `fc.bias`).
//!
//! Shapes are checked before anything is built, so that a net whose layers
//! do not chain is an error at its layer's line in the TOML file, saying
//! both shapes.

use std::path::Path;

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::store::{
    BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialConfig {
    /// Channels, height, width of one input image.
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub name: String,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        init: ConvInit,
    },
    MaxPool2d {
        kernel_size: usize,
        stride: usize,
    },
    Relu,
    Sigmoid,
    Flatten,
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
}

impl Op {
    pub fn type_name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::MaxPool2d { .. } => "maxpool2d",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConvInit {
    /// PyTorch's (and burn's) default: kaiming-uniform weights, uniform bias.
    Default,
    /// Seed 004's `filters()`: two centre-surround filters (+, −), then
    /// Gabors at `linspace(0, 180, out − 1)[:-1]` degrees; bias 0.
    CenterSurroundGabor { sigma: f64 },
}

/// A net whose layers do not chain: which layer, and why (both shapes).
#[derive(Debug, Clone)]
pub struct ShapeError {
    pub layer: String,
    pub index: usize,
    pub message: String,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

fn show(shape: &[usize]) -> String {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    if shape.len() > 1 {
        format!("{dims} = {}", shape.iter().product::<usize>())
    } else {
        dims
    }
}

impl SequentialConfig {
    /// Each layer's output shape (without the batch axis), checking that
    /// every layer takes what the one before gives.
    pub fn shapes(&self) -> std::result::Result<Vec<Vec<usize>>, ShapeError> {
        let mut shape = self.input.to_vec();
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (index, l) in self.layers.iter().enumerate() {
            let err = |message: String| ShapeError {
                layer: l.name.clone(),
                index,
                message,
            };
            if names.contains(&l.name.as_str()) {
                return Err(err(format!("layer name `{}` is used twice", l.name)));
            }
            let from = if index == 0 {
                "the input".to_string()
            } else {
                format!("`{}`", self.layers[index - 1].name)
            };
            let ty = l.op.type_name();
            shape = match &l.op {
                Op::Conv2d {
                    in_channels,
                    out_channels,
                    kernel_size,
                    stride,
                    padding,
                    init,
                    ..
                } => {
                    let [c, h, w] = shape[..] else {
                        return Err(err(format!(
                            "layer `{}` ({ty}) takes channels × height × width but {from} gives {}",
                            l.name,
                            show(&shape)
                        )));
                    };
                    if c != *in_channels {
                        return Err(err(format!(
                            "layer `{}` ({ty}) takes {in_channels} input channels but {from} gives {c} ({})",
                            l.name,
                            show(&shape)
                        )));
                    }
                    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
                    if *kernel_size > ph || *kernel_size > pw {
                        return Err(err(format!(
                            "layer `{}` ({ty}): kernel {kernel_size}×{kernel_size} is larger than its padded input {ph}×{pw}",
                            l.name
                        )));
                    }
                    if let ConvInit::CenterSurroundGabor { .. } = init
                        && (*in_channels != 1 || *out_channels < 3)
                    {
                        return Err(err(format!(
                            "layer `{}` ({ty}): init center_surround_gabor makes single-channel filters, at least 3 (2 centre-surround and Gabors); this layer has {in_channels} input and {out_channels} output channels",
                            l.name
                        )));
                    }
                    vec![
                        *out_channels,
                        (ph - kernel_size) / stride + 1,
                        (pw - kernel_size) / stride + 1,
                    ]
                }
                Op::MaxPool2d {
                    kernel_size,
                    stride,
                } => {
                    let [c, h, w] = shape[..] else {
                        return Err(err(format!(
                            "layer `{}` ({ty}) takes channels × height × width but {from} gives {}",
                            l.name,
                            show(&shape)
                        )));
                    };
                    if *kernel_size > h || *kernel_size > w {
                        return Err(err(format!(
                            "layer `{}` ({ty}): window {kernel_size}×{kernel_size} is larger than its input {h}×{w}",
                            l.name
                        )));
                    }
                    vec![
                        c,
                        (h - kernel_size) / stride + 1,
                        (w - kernel_size) / stride + 1,
                    ]
                }
                Op::Relu | Op::Sigmoid => shape.clone(),
                Op::Flatten => vec![shape.iter().product()],
                Op::Linear { in_features, .. } if shape.len() != 1 => {
                    return Err(err(format!(
                        "layer `{}` ({ty}) takes {in_features} input features but {from} gives {} unflattened: put a flatten layer before it",
                        l.name,
                        show(&shape)
                    )));
                }
                Op::Linear {
                    in_features,
                    out_features,
                    ..
                } => {
                    if shape[0] != *in_features {
                        return Err(err(format!(
                            "layer `{}` ({ty}) takes {in_features} input features but {from} gives {}",
                            l.name,
                            if index > 0 && self.layers[index - 1].op == Op::Flatten && index > 1 {
                                show(&out[index - 2])
                            } else {
                                show(&shape)
                            }
                        )));
                    }
                    vec![*out_features]
                }
            };
            names.push(&l.name);
            out.push(shape.clone());
        }
        Ok(out)
    }

    /// The flattened output size of a layer, or None if it has no such layer.
    pub fn tap_width(&self, name: &str) -> Option<usize> {
        let shapes = self.shapes().ok()?;
        let i = self.layers.iter().position(|l| l.name == name)?;
        Some(shapes[i].iter().product())
    }

    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// Builds the net (shapes must have been checked).
    pub fn init(&self, device: &Device) -> SequentialNet {
        let mut convs = Vec::new();
        let mut linears = Vec::new();
        let mut steps = Vec::new();
        for l in &self.layers {
            steps.push(match &l.op {
                Op::Conv2d {
                    in_channels,
                    out_channels,
                    kernel_size,
                    stride,
                    padding,
                    bias,
                    init,
                } => {
                    let k = *kernel_size;
                    let mut conv = Conv2dConfig::new([*in_channels, *out_channels], [k, k])
                        .with_stride([*stride, *stride])
                        .with_padding(PaddingConfig2d::Explicit(
                            *padding, *padding, *padding, *padding,
                        ))
                        .with_bias(*bias)
                        .init(device);
                    if let ConvInit::CenterSurroundGabor { sigma } = init {
                        let w = center_surround_gabor(*out_channels, k, *sigma);
                        conv.weight = Param::from_tensor(Tensor::from_data(
                            TensorData::new(w, [*out_channels, 1, k, k]),
                            device,
                        ));
                        if *bias {
                            conv.bias =
                                Some(Param::from_tensor(Tensor::zeros([*out_channels], device)));
                        }
                    }
                    convs.push(conv);
                    Step::Conv(convs.len() - 1)
                }
                Op::MaxPool2d {
                    kernel_size,
                    stride,
                } => Step::Pool(*kernel_size, *stride),
                Op::Relu => Step::Relu,
                Op::Sigmoid => Step::Sigmoid,
                Op::Flatten => Step::Flatten,
                Op::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    linears.push(
                        LinearConfig::new(*in_features, *out_features)
                            .with_bias(*bias)
                            .init(device),
                    );
                    Step::Linear(linears.len() - 1)
                }
            });
        }
        SequentialNet {
            convs,
            linears,
            steps,
            names: self.layers.iter().map(|l| l.name.clone()).collect(),
        }
    }

    /// Parameter paths of the burn module → PyTorch state-dict prefixes
    /// (`convs.0.` → `conv.`), in layer order.
    pub fn torch_names(&self) -> Vec<(String, String)> {
        let (mut c, mut f) = (0, 0);
        let mut out = Vec::new();
        for l in &self.layers {
            match l.op {
                Op::Conv2d { .. } => {
                    out.push((format!("convs.{c}."), format!("{}.", l.name)));
                    c += 1;
                }
                Op::Linear { .. } => {
                    out.push((format!("linears.{f}."), format!("{}.", l.name)));
                    f += 1;
                }
                _ => {}
            }
        }
        out
    }
}

/// Seed 004's `filters(out_channels, K)` (σ = 1.1 there), out × K × K:
/// centre-surround exp(−r/(2σ²)) − ½ exp(−r/(2(2σ)²)) with r = √(x²+y²)
/// (the seed's, not r²), its negative, and Gabors
/// exp(−r/(2(0.4σ)²)) · cos(2π x′/10 + π/2) at θ = linspace(0, 180,
/// out − 1)[:-1]°, x′ = x cos θ + y sin θ, each divided by its max |value|.
/// Computed in f64 and stored in f32 (the seed mixes f32 and f64; the
/// values agree to f32 precision, tests/gratings.rs).
pub fn center_surround_gabor(out: usize, k: usize, sigma: f64) -> Vec<f32> {
    // np.linspace(-K/2, K/2, K).astype(np.float32)
    let grid: Vec<f64> = (0..k)
        .map(|i| {
            let (a, b) = (-(k as f64) / 2.0, k as f64 / 2.0);
            let v = if k == 1 {
                a
            } else {
                a + (b - a) * i as f64 / (k - 1) as f64
            };
            v as f32 as f64
        })
        .collect();
    // meshgrid(grid, grid, indexing='ij'): xx[i][j] = grid[i], yy[i][j] = grid[j].
    let r = |i: usize, j: usize| (grid[i] * grid[i] + grid[j] * grid[j]).sqrt();
    let mut filters: Vec<Vec<f64>> = Vec::new();
    let cs: Vec<f64> = (0..k * k)
        .map(|p| {
            let (i, j) = (p / k, p % k);
            (-r(i, j) / (2.0 * sigma * sigma)).exp()
                - 0.5 * (-r(i, j) / (2.0 * (sigma * 2.0).powi(2))).exp()
        })
        .collect();
    filters.push(cs.clone());
    filters.push(cs.iter().map(|v| -v).collect());
    let n_gabor = out - 2;
    for g in 0..n_gabor {
        // np.linspace(0, 180, n_gabor + 1)[:-1] * π / 180
        let theta = (180.0 * g as f64 / n_gabor as f64) * std::f64::consts::PI / 180.0;
        filters.push(
            (0..k * k)
                .map(|p| {
                    let (i, j) = (p / k, p % k);
                    let x = grid[i] * theta.cos() + grid[j] * theta.sin();
                    (-r(i, j) / (2.0 * (sigma * 0.4).powi(2))).exp()
                        * (2.0 * std::f64::consts::PI * x / 10.0 + std::f64::consts::PI / 2.0).cos()
                })
                .collect(),
        );
    }
    filters
        .into_iter()
        .flat_map(|f| {
            let m = f.iter().fold(0f64, |a, v| a.max(v.abs()));
            f.into_iter().map(move |v| (v / m) as f32)
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub enum Step {
    Conv(usize),
    Linear(usize),
    Pool(usize, usize),
    Relu,
    Sigmoid,
    Flatten,
}

#[derive(Module, Debug)]
pub struct SequentialNet {
    pub convs: Vec<Conv2d>,
    pub linears: Vec<Linear>,
    #[module(skip)]
    pub steps: Vec<Step>,
    #[module(skip)]
    pub names: Vec<String>,
}

enum Act {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

impl Act {
    fn flat(self) -> Tensor<2> {
        match self {
            Act::Map(t) => t.flatten(1, 3),
            Act::Flat(t) => t,
        }
    }
}

impl SequentialNet {
    /// Each wanted layer's output flattened per image (C order over
    /// channel, height, width, as PyTorch's `view(S, -1)`), in `wanted`
    /// order; the net runs only as far as the deepest one.
    pub fn forward_taps(&self, x: Tensor<4>, wanted: &[&str]) -> Vec<Tensor<2>> {
        let last = wanted
            .iter()
            .filter_map(|w| self.names.iter().position(|n| n == w))
            .max();
        let mut got: Vec<Option<Tensor<2>>> = vec![None; wanted.len()];
        let Some(last) = last else { return vec![] };
        let mut a = Act::Map(x);
        for (i, step) in self.steps.iter().enumerate().take(last + 1) {
            a = self.step(*step, a);
            for (k, w) in wanted.iter().enumerate() {
                if *w == self.names[i] {
                    got[k] = Some(match &a {
                        Act::Map(t) => t.clone().flatten(1, 3),
                        Act::Flat(t) => t.clone(),
                    });
                }
            }
        }
        got.into_iter().map(|t| t.expect("validated tap")).collect()
    }

    /// The net's output, flattened per image.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut a = Act::Map(x);
        for step in &self.steps {
            a = self.step(*step, a);
        }
        a.flat()
    }

    fn step(&self, step: Step, a: Act) -> Act {
        match (step, a) {
            (Step::Conv(i), Act::Map(t)) => Act::Map(self.convs[i].forward(t)),
            (Step::Pool(k, s), Act::Map(t)) => Act::Map(
                MaxPool2dConfig::new([k, k])
                    .with_strides([s, s])
                    .init()
                    .forward(t),
            ),
            (Step::Relu, Act::Map(t)) => Act::Map(activation::relu(t)),
            (Step::Relu, Act::Flat(t)) => Act::Flat(activation::relu(t)),
            (Step::Sigmoid, Act::Map(t)) => Act::Map(activation::sigmoid(t)),
            (Step::Sigmoid, Act::Flat(t)) => Act::Flat(activation::sigmoid(t)),
            (Step::Flatten, a) => Act::Flat(a.flat()),
            (Step::Linear(i), Act::Flat(t)) => Act::Flat(self.linears[i].forward(t)),
            _ => unreachable!("shapes are checked before a net is built"),
        }
    }
}

/// Writes the weights under PyTorch's state-dict names and layouts
/// (`conv.weight` out × in × k × k, `fc.weight` out × in), so that
/// `net.load_state_dict(safetensors.torch.load_file(path))` loads them.
pub fn save_safetensors(net: &SequentialNet, cfg: &SequentialConfig, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .clear_metadata()
        .metadata("format", "pt");
    for (ours, torch) in cfg.torch_names() {
        store = store.with_key_remapping(&format!("^{}", ours.replace('.', r"\.")), &torch);
    }
    net.save_into(&mut store)
        .map_err(|e| Error::usage(format!("exporting weights to {}: {e}", path.display())))
}

/// Loads a `.safetensors` or PyTorch `.pt`/`.pth` state dict with the
/// net's layer names; anything missing, extra or of the wrong shape is an
/// error listing each key with both shapes.
pub fn load_weights(net: &mut SequentialNet, cfg: &SequentialConfig, path: &Path) -> Result<()> {
    let bad = |m: String| Error::data(path, m);
    if !path.is_file() {
        return Err(
            Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound))
                .with_help("checkpoint paths are relative to the experiment file"),
        );
    }
    let names = cfg.torch_names();
    let to_ours = |torch: &str| -> String {
        names
            .iter()
            .find_map(|(o, t)| torch.strip_prefix(t.as_str()).map(|r| format!("{o}{r}")))
            .unwrap_or_else(|| torch.to_string())
    };
    let to_torch = |ours: &str| -> String {
        names
            .iter()
            .find_map(|(o, t)| ours.strip_prefix(o.as_str()).map(|r| format!("{t}{r}")))
            .unwrap_or_else(|| ours.to_string())
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let result = if ext == "safetensors" {
        let mut probe = SafetensorsStore::from_file(path);
        probe
            .keys()
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .validate(false)
            .allow_partial(true);
        for (o, t) in &names {
            store = store.with_key_remapping(&format!("^{}", t.replace('.', r"\.")), o);
        }
        net.load_from(&mut store)
            .map_err(|e| bad(format!("cannot apply safetensors weights: {e}")))?
    } else {
        let mut probe = PytorchStore::from_file(path);
        probe.keys().map_err(|e| {
            bad(format!("not a readable PyTorch checkpoint: {e}")).with_help(
                "runner reads zip-format .pt/.pth state dicts saved by torch.save (PyTorch ≥ 1.6)",
            )
        })?;
        let mut store = PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .validate(false)
            .allow_partial(true);
        for (o, t) in &names {
            store = store.with_key_remapping(&format!("^{}", t.replace('.', r"\.")), o);
        }
        net.load_from(&mut store)
            .map_err(|e| bad(format!("cannot apply checkpoint: {e}")))?
    };
    let mut problems = Vec::new();
    for e in &result.errors {
        problems.push(match e {
            burn::store::ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => {
                // burn keeps Linear weights in × out; say PyTorch's out × in.
                let torch_layout = |s: &[usize]| -> Vec<usize> {
                    let mut v = s.to_vec();
                    if path.starts_with("linears.") && path.ends_with(".weight") {
                        v.reverse();
                    }
                    v
                };
                format!(
                    "{} has shape {:?} in the checkpoint but the model expects {:?}",
                    to_torch(path),
                    torch_layout(found.as_slice()),
                    torch_layout(expected.as_slice())
                )
            }
            other => format!("{other:?}"),
        });
    }
    for (m, _) in &result.missing {
        problems.push(format!("{} is missing from the checkpoint", to_torch(m)));
    }
    for u in &result.unused {
        problems.push(format!(
            "{} is in the checkpoint but not in the model",
            to_torch(&to_ours(u))
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    Err(bad(format!(
        "checkpoint does not fit the model:\n  {}",
        problems.join("\n  ")
    ))
    .with_help("the checkpoint's names are the layers' (conv.weight, fc.bias, …) and its shapes their sizes"))
}

/// The seed's CNN (seed 004), for tests.
pub fn seed_cnn() -> SequentialConfig {
    let l = |name: &str, op: Op| LayerSpec {
        name: name.into(),
        op,
    };
    SequentialConfig {
        input: [1, 48, 64],
        layers: vec![
            l(
                "conv",
                Op::Conv2d {
                    in_channels: 1,
                    out_channels: 6,
                    kernel_size: 7,
                    stride: 1,
                    padding: 3,
                    bias: true,
                    init: ConvInit::CenterSurroundGabor { sigma: 1.1 },
                },
            ),
            l("conv_relu", Op::Relu),
            l(
                "pool",
                Op::MaxPool2d {
                    kernel_size: 8,
                    stride: 8,
                },
            ),
            l("flatten", Op::Flatten),
            l(
                "fc",
                Op::Linear {
                    in_features: 288,
                    out_features: 10,
                    bias: true,
                },
            ),
            l("fc_relu", Op::Relu),
            l(
                "out",
                Op::Linear {
                    in_features: 10,
                    out_features: 1,
                    bias: true,
                },
            ),
            l("sigmoid", Op::Sigmoid),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_cnn_chains_and_a_wrong_fc_names_both_shapes() {
        let cfg = seed_cnn();
        let s = cfg.shapes().unwrap();
        assert_eq!(s[2], vec![6, 6, 8]);
        assert_eq!(cfg.tap_width("pool"), Some(288));
        assert_eq!(cfg.tap_width("fc"), Some(10));
        let mut bad = cfg.clone();
        bad.layers[4].op = Op::Linear {
            in_features: 300,
            out_features: 10,
            bias: true,
        };
        let e = bad.shapes().unwrap_err();
        assert_eq!(e.index, 4);
        assert_eq!(
            e.message,
            "layer `fc` (linear) takes 300 input features but `flatten` gives 6×6×8 = 288"
        );
        let mut no_flatten = cfg.clone();
        no_flatten.layers.remove(3);
        let e = no_flatten.shapes().unwrap_err();
        assert!(
            e.message.contains("put a flatten layer before it"),
            "{}",
            e.message
        );
    }
}

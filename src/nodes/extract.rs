//! `extract`: one net's activations on one subject's images, a feature
//! matrix per tap (`<tap>.npy`, images × flattened features, stimulus order).
//!
//! Images go through the torchvision pipeline in batches; each batch's taps
//! are appended to their files at once, so memory holds one batch, never
//! every tap of every image.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use burn::prelude::*;
use npyz::WriterBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::model::alexnet::{AlexNetConfig, resolve_tap};
use crate::model::load::load_weights;
use crate::node::{Ctx, NodeKind};
use crate::npy;
use crate::vocab::{DeviceChoice, PreprocessKind};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ExtractTask {
    pub arch: String,
    pub model: AlexNetConfig,
    /// Random-init seed; None when weights come from a checkpoint (hashed as an input).
    pub seed: Option<u64>,
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    pub preprocess: PreprocessKind,
    /// Requested tap names, each written as `<tap>.npy`.
    pub taps: Vec<String>,
    /// Image files in stimulus order (hashed as inputs): N×H×W×3 uint8
    /// `.npy` stacks, or single images (`.png`, read as PIL's convert('RGB')).
    #[serde(skip)]
    pub images: Vec<PathBuf>,
    /// vim-1: `images` are `.mat` files and this is each one's variable
    /// (`stimTrn`, `stimVal`) of n × H × W grayscale stimuli.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mat_vars: Vec<String>,
    #[serde(skip)]
    pub batch_size: usize,
    #[serde(skip)]
    pub device: DeviceChoice,
}

fn is_stack(p: &std::path::Path) -> bool {
    p.extension().is_some_and(|e| e == "npy")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractOut {
    pub n_images: usize,
    pub backend: String,
    /// Tap → flattened width.
    pub widths: Vec<(String, usize)>,
}

type Writer = npyz::NpyWriter<f32, BufWriter<File>>;

impl NodeKind for ExtractTask {
    fn kind(&self) -> &'static str {
        "extract"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // A stack of images is read whole, PNGs a batch at a time; a batch's
        // input, its taps (twice: tensor and host copy) and activations.
        let widest = self
            .taps
            .iter()
            .filter_map(|t| resolve_tap(t))
            .map(|m| self.model.tap_width(m))
            .sum::<usize>() as u64;
        let image_bytes = self
            .images
            .iter()
            .filter(|p| is_stack(p))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        image_bytes + self.batch_size as u64 * 4 * (3 * 224 * 224 + 2 * widest + 2_000_000)
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        // Checked first, before a device or weights are set up.
        let pipeline = self.preprocess.pipeline();
        if pipeline.is_none() != !self.mat_vars.is_empty() {
            return Err(ctx.fail(if self.mat_vars.is_empty() {
                "preprocess vim1 reads vim-1 stimuli (.mat), not image files"
            } else {
                "vim-1 stimuli (.mat) need preprocess = \"vim1\""
            }));
        }
        let (device, backend) = crate::model::device::device_for(self.device)?;
        let mut net = if let Some(seed) = self.seed {
            device.seed(seed);
            self.model.init(&device)
        } else {
            self.model.init(&device)
        };
        if let Some(path) = &self.checkpoint {
            ctx.progress.set_message("loading checkpoint");
            load_weights(&mut net, path)?;
        }
        // A net runner trained: its train entry's torchvision-named export.
        if let Ok(trained) = ctx.input("weights") {
            ctx.progress.set_message("loading trained weights");
            load_weights(&mut net, &super::train::checkpoint_of(trained)?)?;
        }
        let modules: Vec<&str> = self
            .taps
            .iter()
            .map(|t| resolve_tap(t).ok_or_else(|| ctx.fail(format!("`{t}` is not an AlexNet tap"))))
            .collect::<Result<_>>()?;

        let mut n_total = 0;
        for (i, f) in self.images.iter().enumerate() {
            n_total += if let Some(var) = self.mat_vars.get(i) {
                crate::mat::shape(f, var)?.first().copied().unwrap_or(0)
            } else if is_stack(f) {
                let (shape, _) = npy::read_header(f).at(f)?;
                shape.first().copied().unwrap_or(0)
            } else {
                1
            };
        }
        // Extraction is the long node: a real bar, images done of images to do.
        ctx.progress.set_style(
            indicatif::ProgressStyle::with_template(
                "  {prefix} [{bar:25}] {pos}/{len} images {per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        ctx.progress.set_length(n_total as u64);
        let mut writers: Option<Vec<Writer>> = None;
        let mut widths = Vec::new();
        let mut done = 0;
        // vim-1: n × H × W float stimuli per file, the project's TF1 pipeline.
        for (file, var) in self.images.iter().zip(&self.mat_vars) {
            let stim = crate::vim1::read_stimuli(file, var)?;
            let [n, h, w] = stim.shape[..] else {
                unreachable!("read_stimuli checks three axes")
            };
            if let Some(i) = stim.data.iter().position(|x| !x.is_finite()) {
                return Err(Error::data(
                    file,
                    format!("`{var}` image {} has a non-finite pixel", i / (h * w)),
                ));
            }
            let s = crate::preprocess::VIM1_SIZE;
            for start in (0..n).step_by(self.batch_size) {
                let end = (start + self.batch_size).min(n);
                let pixels: Vec<f32> = (start..end)
                    .into_par_iter()
                    .flat_map_iter(|i| {
                        crate::preprocess::vim1_tensor(
                            &stim.data[i * h * w..(i + 1) * h * w],
                            h,
                            w,
                            s,
                        )
                    })
                    .collect();
                let x = Tensor::<4>::from_data(
                    TensorData::new(pixels, [end - start, 3, s, s]),
                    &device,
                );
                let rows = self.forward(ctx, &net, x, &modules)?;
                self.append(ctx, &mut writers, &mut widths, rows, n_total)?;
                done += end - start;
                ctx.progress.set_position(done as u64);
            }
        }
        let images: &[PathBuf] = if self.mat_vars.is_empty() {
            &self.images
        } else {
            &[]
        };
        let pipeline = pipeline.unwrap_or_else(crate::preprocess::Preprocess::algonauts);
        // Runs of single images become batches of their own; stacks are read whole.
        let mut groups: Vec<&[PathBuf]> = Vec::new();
        let mut i = 0;
        while i < images.len() {
            let j = if is_stack(&images[i]) {
                i + 1
            } else {
                i + images[i..].iter().take_while(|p| !is_stack(p)).count()
            };
            groups.push(&images[i..j]);
            i = j;
        }
        for group in groups {
            let file = &group[0];
            if !is_stack(file) {
                for chunk in group.chunks(self.batch_size) {
                    let decoded = chunk
                        .par_iter()
                        .map(|p| {
                            let img = crate::algonauts::read_rgb_png(p)?;
                            let (h, w) = (img.shape[0], img.shape[1]);
                            Ok((pipeline.output_size(h, w), pipeline.apply(&img.data, h, w)))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    // Both pipelines end at a fixed size, whatever each image's.
                    let (oh, ow) = decoded[0].0;
                    let pixels: Vec<f32> = decoded.into_iter().flat_map(|(_, px)| px).collect();
                    let x = Tensor::<4>::from_data(
                        TensorData::new(pixels, [chunk.len(), 3, oh, ow]),
                        &device,
                    );
                    let rows = self.forward(ctx, &net, x, &modules)?;
                    self.append(ctx, &mut writers, &mut widths, rows, n_total)?;
                    done += chunk.len();
                    ctx.progress.set_position(done as u64);
                }
                continue;
            }
            let imgs = npy::read_u8(file)
                .map_err(|e| Error::data(file, format!("not a uint8 image array: {e}")))?;
            let [n, h @ 1..=usize::MAX, w @ 1..=usize::MAX, 3] = imgs.shape[..] else {
                return Err(Error::data(
                    file,
                    format!(
                        "images must be N×H×W×3 uint8 with H, W ≥ 1, found shape {:?}",
                        imgs.shape
                    ),
                ));
            };
            let per = h * w * 3;
            for start in (0..n).step_by(self.batch_size) {
                let end = (start + self.batch_size).min(n);
                let (oh, ow) = pipeline.output_size(h, w);
                let pixels: Vec<f32> = (start..end)
                    .into_par_iter()
                    .flat_map_iter(|i| pipeline.apply(&imgs.data[i * per..(i + 1) * per], h, w))
                    .collect();
                let x = Tensor::<4>::from_data(
                    TensorData::new(pixels, [end - start, 3, oh, ow]),
                    &device,
                );
                let rows = self.forward(ctx, &net, x, &modules)?;
                self.append(ctx, &mut writers, &mut widths, rows, n_total)?;
                done += end - start;
                ctx.progress.set_position(done as u64);
            }
        }
        for (w, tap) in writers.into_iter().flatten().zip(&self.taps) {
            w.finish().at(ctx.out.path(&format!("{tap}.npy")))?;
        }
        ctx.out.write_json(
            "extract.json",
            &ExtractOut {
                n_images: done,
                backend: backend.to_string(),
                widths,
            },
        )
    }
}

impl ExtractTask {
    fn forward(
        &self,
        ctx: &Ctx,
        net: &crate::model::alexnet::AlexNet,
        x: Tensor<4>,
        modules: &[&str],
    ) -> Result<Vec<(usize, Vec<f32>)>> {
        net.forward_taps(x, modules)
            .into_iter()
            .map(|t| {
                let [_, d] = t.dims();
                let v = t
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| ctx.fail(format!("{e:?}")))?;
                Ok((d, v))
            })
            .collect()
    }

    /// Appends a batch's taps to their files (created at the first batch).
    fn append(
        &self,
        ctx: &Ctx,
        writers: &mut Option<Vec<Writer>>,
        widths: &mut Vec<(String, usize)>,
        rows: Vec<(usize, Vec<f32>)>,
        n_total: usize,
    ) -> Result<()> {
        if writers.is_none() {
            let mut ws = Vec::new();
            for (tap, (d, _)) in self.taps.iter().zip(&rows) {
                widths.push((tap.clone(), *d));
                let path = ctx.out.path(&format!("{tap}.npy"));
                let f = BufWriter::new(File::create(&path).at(&path)?);
                let writer = npyz::WriteOptions::<f32>::new()
                    .default_dtype()
                    .shape(&[n_total as u64, *d as u64])
                    .writer(f)
                    .begin_nd()
                    .at(&path)?;
                ws.push(writer);
            }
            *writers = Some(ws);
        }
        for ((w, (_, v)), tap) in writers
            .as_mut()
            .unwrap()
            .iter_mut()
            .zip(&rows)
            .zip(&self.taps)
        {
            w.extend(v.iter().copied())
                .at(ctx.out.path(&format!("{tap}.npy")))?;
        }
        Ok(())
    }
}

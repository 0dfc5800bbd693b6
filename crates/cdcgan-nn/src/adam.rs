//! Adam with PyTorch's update rule, fused into in-place passes on the CPU, and its state as
//! named tensors (to save beside the weights and load back for an exact resume).

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::{self, contiguous_f32, contiguous_f32_mut};

/// Adam's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam over a fixed, named list of variables.
///
/// `p -= lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)`, as `torch.optim.Adam`.
#[derive(Debug)]
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
    config: AdamConfig,
}

impl Adam {
    /// An optimizer for `vars` with zeroed moments.
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let zeros = |v: &Var| v.zeros_like();
        let m = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        let v = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            vars,
            m,
            v,
            t: 0,
            config,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Changes the learning rate (the moments are kept).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The optimized variables, by name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let t = self.t as i32;
        let step_size = lr / (1.0 - beta1.powi(t));
        let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Gradients can carry the autograd graph; moments built on them would chain every
            // step's graph to the next and never be freed.
            let g = g.detach();
            if fused(var, &g) {
                // Three passes, no allocation: m and v in place, then the parameter.
                let g = g.contiguous()?;
                self.m[i].inplace_op2(&g, &MovingAverage::new(beta1, false))?;
                self.v[i].inplace_op2(&g, &MovingAverage::new(beta2, true))?;
                let apply = Apply {
                    step_size: step_size as f32,
                    bc2_sqrt: bc2_sqrt as f32,
                    eps: eps as f32,
                };
                var.as_tensor()
                    .inplace_op3(&self.m[i], &self.v[i], &apply)?;
                continue;
            }
            let m = ((&self.m[i] * beta1)? + (&g * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((v.sqrt()? / bc2_sqrt)? + eps)?;
            let update = ((&m / &denom)? * step_size)?;
            var.set(&var.as_tensor().detach().sub(&update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors, `{name}.m` and `{name}.v` for each variable (copies:
    /// later steps update the moments in place). With [`Adam::steps`], all the state.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("{name}.m"), self.m[i].copy()?));
            out.push((format!("{name}.v"), self.v[i].copy()?));
        }
        Ok(out)
    }

    /// Restores the state [`Adam::state`] gave: each moment read through `get` by its name,
    /// and the step count. A missing or misshapen moment is refused, naming it; nothing is
    /// changed then.
    pub fn load_state<'a>(
        &mut self,
        get: impl Fn(&str) -> Option<&'a Tensor>,
        steps: u64,
    ) -> Result<()> {
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            for (suffix, out) in [("m", &mut m), ("v", &mut v)] {
                let key = format!("{name}.{suffix}");
                let t = get(&key).ok_or_else(|| Error::State(format!("missing `{key}`")))?;
                if t.dims() != var.dims() {
                    return Err(Error::State(format!(
                        "`{key}` has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                // A copy of its own: the step updates moments in place.
                out.push(t.to_dtype(DType::F32)?.to_device(var.device())?.copy()?);
            }
        }
        self.m = m;
        self.v = v;
        self.t = steps;
        Ok(())
    }
}

/// `average = β·average + (1-β)·value`, in place where the fused kernels apply (the
/// exponential moving average of weights, as for an EMA generator).
pub fn moving_average(average: &Var, value: &Tensor, beta: f64) -> Result<()> {
    if fused(average, value) {
        average
            .as_tensor()
            .inplace_op2(&value.contiguous()?, &MovingAverage::new(beta, false))?;
    } else {
        average.set(&((average.as_tensor() * beta)? + (value * (1.0 - beta))?)?)?;
    }
    Ok(())
}

/// Whether the fused in-place update applies: f32 on the CPU with the fast kernels on.
fn fused(var: &Var, g: &Tensor) -> bool {
    kernels::fast_kernels()
        && var.device().is_cpu()
        && var.dtype() == DType::F32
        && g.dtype() == DType::F32
        && var.is_contiguous()
}

/// Elements per parallel task of the fused update.
const CHUNK: usize = 1 << 15;

/// `m = β·m + (1-β)·x` (or `x²`), in place: Adam's moments and the generator's EMA.
struct MovingAverage {
    beta: f32,
    square: bool,
}

impl MovingAverage {
    fn new(beta: f64, square: bool) -> Self {
        Self {
            beta: beta as f32,
            square,
        }
    }
}

impl InplaceOp2 for MovingAverage {
    fn name(&self) -> &'static str {
        "moving-average"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let m = contiguous_f32_mut(s1, l1, "average")?;
        let g = contiguous_f32(s2, l2, "new value")?;
        if m.len() != g.len() {
            candle_core::bail!("moving average: sizes differ");
        }
        let (beta, rest) = (self.beta, 1.0 - self.beta);
        let square = self.square;
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                for (m, &g) in m.iter_mut().zip(g) {
                    let g = if square { g * g } else { g };
                    *m = beta * *m + rest * g;
                }
            });
        Ok(())
    }
}

/// `p -= step_size · m / (sqrt(v) / bc2_sqrt + ε)`, in place.
#[derive(Clone, Copy)]
struct Apply {
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "adam-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let p = contiguous_f32_mut(s1, l1, "parameter")?;
        let m = contiguous_f32(s2, l2, "first moment")?;
        let v = contiguous_f32(s3, l3, "second moment")?;
        if p.len() != m.len() || p.len() != v.len() {
            candle_core::bail!("adam: parameter and moment sizes differ");
        }
        let Apply {
            step_size,
            bc2_sqrt,
            eps,
        } = *self;
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p -= step_size * m / (v.sqrt() / bc2_sqrt + eps);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Serialises the tests that switch the process-wide fast-kernel flag.
    static FAST_FLAG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Adam by hand, in f64, for one scalar parameter.
    fn reference(p0: f64, grads: &[f64], c: AdamConfig) -> Vec<f64> {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        let mut out = Vec::new();
        for (i, g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let mhat = m / (1.0 - c.beta1.powi(t));
            let vhat = v / (1.0 - c.beta2.powi(t));
            p -= c.lr * mhat / (vhat.sqrt() + c.eps);
            out.push(p);
        }
        out
    }

    #[test]
    fn matches_hand_computed_steps() {
        let c = AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        };
        // Loss = w · p, so the gradient of p is exactly w at every step.
        let ws = [0.5f64, -1.5, 2.0, 0.25];
        let want = reference(1.0, &ws, c);
        // The fused in-place update (fast kernels on) and the tensor-op one (off).
        let _flag = FAST_FLAG.lock().unwrap_or_else(|e| e.into_inner());
        for fast in [true, false] {
            kernels::set_fast_kernels(fast);
            let p = Var::new(&[1.0f32], &Device::Cpu).unwrap();
            let mut adam = Adam::new(vec![("p".into(), p.clone())], c).unwrap();
            for (w, want) in ws.iter().zip(&want) {
                let loss = (p.as_tensor() * *w).unwrap().sum_all().unwrap();
                adam.step(&loss.backward().unwrap()).unwrap();
                let got = f64::from(p.to_vec1::<f32>().unwrap()[0]);
                assert!((got - want).abs() < 1e-6, "fast {fast}: {got} vs {want}");
            }
            assert_eq!(adam.steps(), 4);
        }
        kernels::set_fast_kernels(true);
    }

    #[test]
    fn fused_update_agrees_with_tensor_ops_on_large_parameters() {
        // Several parallel chunks, and a second variable whose gradient is missing.
        let _flag = FAST_FLAG.lock().unwrap_or_else(|e| e.into_inner());
        let n = 3 * CHUNK + 17;
        let init: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let run = |fast: bool| {
            kernels::set_fast_kernels(fast);
            let p = Var::new(init.as_slice(), &Device::Cpu).unwrap();
            let idle = Var::new(&[5f32], &Device::Cpu).unwrap();
            let vars = vec![("p".into(), p.clone()), ("idle".into(), idle.clone())];
            let mut adam = Adam::new(vars, AdamConfig::default()).unwrap();
            for _ in 0..3 {
                let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
                adam.step(&loss.backward().unwrap()).unwrap();
            }
            assert_eq!(idle.to_vec1::<f32>().unwrap(), [5.0]);
            (
                p.to_vec1::<f32>().unwrap(),
                adam.v[0].to_vec1::<f32>().unwrap(),
            )
        };
        let (fused_p, fused_v) = run(true);
        let (plain_p, plain_v) = run(false);
        kernels::set_fast_kernels(true);
        for (a, b) in fused_p
            .iter()
            .zip(&plain_p)
            .chain(fused_v.iter().zip(&plain_v))
        {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert_ne!(fused_p, init);
    }

    #[test]
    fn moments_do_not_keep_the_autograd_graph_alive() {
        // Gradients flowing through another variable carry a graph; the moments must not.
        let p = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let w = Var::new(&[3.0f32, 4.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![("p".into(), p.clone())], AdamConfig::default()).unwrap();
        for _ in 0..3 {
            let loss = (p.as_tensor() * w.as_tensor())
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
        }
        assert!(!adam.m[0].track_op() && !adam.v[0].track_op());
    }

    #[test]
    fn state_round_trips_through_named_tensors() {
        let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut a = Adam::new(vec![("p".into(), p.clone())], AdamConfig::default()).unwrap();
        let loss = (p.as_tensor().sqr().unwrap()).sum_all().unwrap();
        a.step(&loss.backward().unwrap()).unwrap();
        let state: std::collections::HashMap<String, Tensor> =
            a.state().unwrap().into_iter().collect();
        let mut b = Adam::new(vec![("p".into(), p.clone())], AdamConfig::default()).unwrap();
        b.load_state(|k| state.get(k), a.steps()).unwrap();
        assert_eq!(b.steps(), 1);
        assert_eq!(
            b.m[0].to_vec1::<f32>().unwrap(),
            a.m[0].to_vec1::<f32>().unwrap()
        );
        let msg = b.load_state(|_| None, 1).unwrap_err().to_string();
        assert!(msg.contains("p.m"), "{msg}");
        let wrong = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let msg = b.load_state(|_| Some(&wrong), 1).unwrap_err().to_string();
        assert!(msg.contains("shape"), "{msg}");
    }

    #[test]
    fn moving_average_fused_and_plain_agree() {
        let _flag = FAST_FLAG.lock().unwrap_or_else(|e| e.into_inner());
        let run = |fast: bool| {
            kernels::set_fast_kernels(fast);
            let avg = Var::new(&[1.0f32, 2.0, -4.0], &Device::Cpu).unwrap();
            let x = Tensor::new(&[3.0f32, 0.0, 4.0], &Device::Cpu).unwrap();
            moving_average(&avg, &x, 0.75).unwrap();
            avg.to_vec1::<f32>().unwrap()
        };
        let (fused, plain) = (run(true), run(false));
        kernels::set_fast_kernels(true);
        assert_eq!(fused, [1.5, 1.5, -2.0]);
        assert_eq!(plain, fused);
    }
}

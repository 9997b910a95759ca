//! ROAD's noisy linear imputation (Rong et al. 2022): every removed pixel becomes the
//! weighted mean of its eight neighbours, kept or removed, plus noise.
//!
//! The equations of the removed pixels are a graph Laplacian with Dirichlet values from
//! the kept ones: symmetric positive definite, with a condition number near 1e4 at
//! 224 × 224. Conjugate gradients solve them, preconditioned by one multigrid V-cycle:
//! every level halves the grid (coarse cell I on fine cell 2I, linear interpolation
//! between), down to one cell, with Galerkin coarse operators (Pᵀ A P) and damped
//! Jacobi before and after: 5–8 iterations at 224 × 224 where SSOR took 25–112. On
//! the CPU ([`impute`]) the cycle runs in f32 over the runs of unknowns in each row,
//! under conjugate gradients in f64. Every level is a 3 × 3 stencil per cell, so the
//! same cycle also runs as shifted products of whole tensors, batched over masks, in
//! f64 on a GPU ([`impute_batch`]).

use burn::tensor::ops::PadMode;
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::metrics::Image;
use crate::rng::Normal;

/// The neighbours linear imputation averages, with their weights (ROAD's).
const NEIGHBOURS: [((isize, isize), f64); 8] = [
    ((1, 1), 1. / 12.),
    ((0, 1), 1. / 6.),
    ((-1, 1), 1. / 12.),
    ((1, -1), 1. / 12.),
    ((0, -1), 1. / 6.),
    ((-1, -1), 1. / 12.),
    ((1, 0), 1. / 6.),
    ((-1, 0), 1. / 6.),
];

/// Relative residual at which a solve stops, per channel: imputed values within 1e-4
/// of the exact solution (5e-5 on the 224 × 224 test scene), a hundredth of the noise
/// ROAD adds (0.01), and two fewer iterations of the 6–10 that 1e-8 took.
const TOLERANCE: f64 = 1e-6;
/// How far imputed values may be from the exact solution, for the tests.
#[cfg(test)]
const ACCURACY: f64 = 1e-4;
/// Bounds one solve's time on a mask no test foresaw; the cycle needs fewer than ten.
const MAX_ITERATIONS: usize = 200;
/// Jacobi's damping: the stencil's high frequencies have D⁻¹A in [2/3, 4/3], which 0.8
/// damps to at most 0.47, and it stays convergent where borders and masks stretch the
/// spectrum towards 2 (the V-cycle must be, to precondition CG).
const JACOBI: f64 = 0.8;
/// Jacobi sweeps before the coarse correction, and as many after, so that the cycle is
/// symmetric. Two took 6–10 iterations, one 8–13, at 224 × 224: about as fast on the
/// CPU, and fewer round trips on a GPU.
const SWEEPS: usize = 2;

/// Where ROAD's imputations are solved.
#[derive(Clone, Debug)]
pub enum Solver {
    /// One mask at a time per thread ([`crate::device::thread_limit`]), the CPU's.
    Threads,
    /// All of an image's masks at once, as tensors on the device, a GPU's.
    Batched(Device),
}

impl Solver {
    /// Batched on a CUDA device; one mask per thread elsewhere, where the scalar cycle
    /// wastes nothing on kept pixels and tensors would.
    pub fn for_device(device: &Device) -> Solver {
        if crate::device::is_cuda_device(device) {
            Solver::Batched(device.clone())
        } else {
            Solver::Threads
        }
    }
}

/// ROAD's noisy linear imputation of the pixels not kept: per channel, each becomes
/// the weighted mean of its neighbours (kept or imputed; the weights of neighbours
/// outside the image are dropped), plus noise.
pub fn impute(image: &Image, keep: &[bool], noise: f32, normal: &mut Normal) -> Vec<f32> {
    let system = System::new(image, keep);
    let (solution, _) = system.solve();
    let grid = system.grid();
    fill(
        image,
        keep,
        |c, pixel| {
            solution[c * grid.cells() + grid.index(pixel / image.width, pixel % image.width)]
        },
        noise,
        normal,
    )
}

/// [`impute`] of several masks of one image, solved together on `device`, each with its
/// own noise; `None` when the device fails (out of memory), for the caller to solve them
/// one by one instead.
pub fn impute_batch(
    image: &Image,
    keeps: &[Vec<bool>],
    noise: f32,
    normals: &mut [Normal],
    device: &Device,
) -> Option<Vec<Vec<f32>>> {
    let (solutions, _) =
        crate::isolate::isolated(|| batched::solve(image, keeps, device)).ok()??;
    let plane = image.height * image.width;
    Some(
        keeps
            .iter()
            .zip(solutions.chunks(3 * plane))
            .zip(normals)
            .map(|((keep, solution), normal)| {
                fill(
                    image,
                    keep,
                    |c, pixel| solution[c * plane + pixel],
                    noise,
                    normal,
                )
            })
            .collect(),
    )
}

/// The image with every pixel not kept set to `value(channel, pixel)` plus noise, drawn
/// channel by channel in pixel order: the order every ROAD figure was computed with.
fn fill(
    image: &Image,
    keep: &[bool],
    value: impl Fn(usize, usize) -> f64,
    noise: f32,
    normal: &mut Normal,
) -> Vec<f32> {
    let plane = image.height * image.width;
    let mut out = image.input.to_vec();
    for c in 0..3 {
        for pixel in (0..plane).filter(|&p| !keep[p]) {
            out[c * plane + pixel] = value(c, pixel) as f32 + noise * normal.sample();
        }
    }
    out
}

type Rgb = [f64; 3];

/// The 3 × 3 stencil's offsets (dy, dx), row by row; `CENTRE` is the diagonal.
const OFFSETS: [(isize, isize); 9] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 0),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];
const CENTRE: usize = 4;

fn stencil_index(dy: isize, dx: isize) -> usize {
    ((dy + 1) * 3 + dx + 1) as usize
}

/// ROAD's weight towards each offset of the stencil (none at the centre).
const WEIGHTS: [f64; 9] = {
    let mut weights = [0.0; 9];
    let mut n = 0;
    while n < NEIGHBOURS.len() {
        let ((dy, dx), weight) = NEIGHBOURS[n];
        weights[((dy + 1) * 3 + dx + 1) as usize] = weight;
        n += 1;
    }
    weights
};

/// The coarse rows (or columns) fine row `i` interpolates from, with their weights:
/// coarse row I lies on fine row 2I, an odd row halfway between two; past the last
/// coarse row the last is repeated, so that constants stay constants at the border.
fn parents(i: usize, coarse: usize) -> ([(usize, f64); 2], usize) {
    if i.is_multiple_of(2) || i / 2 + 1 == coarse {
        ([(i / 2, 1.0), (0, 0.0)], 1)
    } else {
        ([(i / 2, 0.5), (i / 2 + 1, 0.5)], 2)
    }
}

/// A level's cells, with a halo of one cell around them so that every stencil read is
/// in bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Grid {
    height: usize,
    width: usize,
}

impl Grid {
    fn stride(self) -> usize {
        self.width + 2
    }

    fn cells(self) -> usize {
        (self.height + 2) * self.stride()
    }

    fn index(self, y: usize, x: usize) -> usize {
        (y + 1) * self.stride() + x + 1
    }

    /// Where cell `index + offset` lies, as a signed step in the padded cells.
    fn step(self, (dy, dx): (isize, isize)) -> isize {
        dy * self.stride() as isize + dx
    }

    /// Every other row and column, the last one kept.
    fn coarse(self) -> Grid {
        Grid {
            height: self.height.div_ceil(2),
            width: self.width.div_ceil(2),
        }
    }

    /// A vector on this level: three planes of padded cells, one per channel, zero off
    /// the unknowns.
    fn zeros<T: Real>(self) -> Vec<T> {
        vec![T::ZERO; 3 * self.cells()]
    }

    /// Channel `c`'s plane of a vector.
    fn plane<T>(self, v: &[T], c: usize) -> &[T] {
        &v[c * self.cells()..(c + 1) * self.cells()]
    }

    fn plane_mut<T>(self, v: &mut [T], c: usize) -> &mut [T] {
        &mut v[c * self.cells()..(c + 1) * self.cells()]
    }
}

/// The precision a level is kept and cycled in: f64 for the equations conjugate
/// gradients solve, f32 for the V-cycle that preconditions them (half the memory to
/// stream, twice the numbers per vector instruction; the f64 iteration corrects its
/// rounding as it corrects the cycle's own error).
trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
{
    const ZERO: Self;
    fn of(value: f64) -> Self;
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    fn of(value: f64) -> f64 {
        value
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    fn of(value: f64) -> f32 {
        value as f32
    }
}

/// A level's operator. Vectors are zero off the unknowns (kept pixels, coarse cells no
/// unknown interpolates from, the halo), and products and sweeps run over the runs of
/// unknowns only.
enum Operator<T> {
    /// The image's own equations: ROAD's weights, the same for every removed pixel, so
    /// only the diagonal is stored (the weights of the neighbours inside the image, 0
    /// off the unknowns); kept neighbours are read as the zeros the vector holds there.
    Image { diagonal: Vec<T> },
    /// A coarse level's Galerkin operator: nine coefficient planes, at [`OFFSETS`].
    Stencil(Box<[Vec<T>; 9]>),
}

struct Level<T> {
    grid: Grid,
    operator: Operator<T>,
    /// Jacobi's damping over the diagonal; 0 off the unknowns.
    damped_inverse: Vec<T>,
    /// 1 on the unknowns, 0 elsewhere.
    unknown: Vec<T>,
    /// The unknowns, by padded index in pixel order, as runs of neighbours in a row
    /// `start..end`: the products and sweeps run over these, and skip the kept pixels.
    runs: Vec<std::ops::Range<usize>>,
}

impl Level<f64> {
    fn new(grid: Grid, operator: Operator<f64>) -> Level<f64> {
        let diagonal = match &operator {
            Operator::Image { diagonal } => diagonal,
            Operator::Stencil(stencil) => &stencil[CENTRE],
        };
        let unknown: Vec<f64> = diagonal.iter().map(|&d| f64::from(d > 0.0)).collect();
        let damped_inverse = diagonal
            .iter()
            .map(|&d| if d > 0.0 { JACOBI / d } else { 0.0 })
            .collect();
        let unknowns = (0..grid.height)
            .flat_map(|y| (0..grid.width).map(move |x| grid.index(y, x)))
            .filter(|&i| unknown[i] > 0.0);
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        for i in unknowns {
            match runs.last_mut() {
                // The halo ends every row with a cell that is no unknown.
                Some(run) if run.end == i => run.end += 1,
                _ => runs.push(i..i + 1),
            }
        }
        Level {
            grid,
            operator,
            damped_inverse,
            unknown,
            runs,
        }
    }

    /// Row `i`'s coefficients, at [`OFFSETS`].
    fn coefficients(&self, i: usize) -> [f64; 9] {
        match &self.operator {
            Operator::Stencil(stencil) => std::array::from_fn(|k| stencil[k][i]),
            Operator::Image { diagonal } => std::array::from_fn(|k| {
                if k == CENTRE {
                    diagonal[i]
                } else {
                    let j = i.wrapping_add_signed(self.grid.step(OFFSETS[k]));
                    -WEIGHTS[k] * self.unknown[j]
                }
            }),
        }
    }

    /// Pᵀ A P, with P the interpolation of [`parents`] onto this level's unknowns: a
    /// 3 × 3 stencil again, since fine neighbours interpolate from neighbouring coarse
    /// cells.
    fn galerkin(&self) -> Level<f64> {
        let (fine, coarse) = (self.grid, self.grid.coarse());
        let mut stencil: Box<[Vec<f64>; 9]> =
            Box::new(std::array::from_fn(|_| vec![0.0; coarse.cells()]));
        let rows: Vec<_> = (0..fine.height)
            .map(|y| parents(y, coarse.height))
            .collect();
        let columns: Vec<_> = (0..fine.width).map(|x| parents(x, coarse.width)).collect();
        for i in self.runs.iter().flat_map(|run| run.clone()) {
            let (y, x) = (i / fine.stride() - 1, i % fine.stride() - 1);
            let (py, npy) = rows[y];
            let (px, npx) = columns[x];
            for (a, &(dy, dx)) in self.coefficients(i).into_iter().zip(&OFFSETS) {
                // Also every neighbour outside the level.
                if a == 0.0 {
                    continue;
                }
                let (qy, nqy) = rows[y.wrapping_add_signed(dy)];
                let (qx, nqx) = columns[x.wrapping_add_signed(dx)];
                for &(iy, wy) in &py[..npy] {
                    for &(ix, wx) in &px[..npx] {
                        let row = coarse.index(iy, ix);
                        let a = wy * wx * a;
                        for &(jy, vy) in &qy[..nqy] {
                            for &(jx, vx) in &qx[..nqx] {
                                let k = stencil_index(
                                    jy as isize - iy as isize,
                                    jx as isize - ix as isize,
                                );
                                stencil[k][row] += a * vy * vx;
                            }
                        }
                    }
                }
            }
        }
        Level::new(coarse, Operator::Stencil(stencil))
    }

    /// This level in f32, for the V-cycle.
    fn narrow(&self) -> Level<f32> {
        let narrow = |v: &Vec<f64>| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        Level {
            grid: self.grid,
            operator: match &self.operator {
                Operator::Image { diagonal } => Operator::Image {
                    diagonal: narrow(diagonal),
                },
                Operator::Stencil(stencil) => {
                    Operator::Stencil(Box::new(std::array::from_fn(|k| narrow(&stencil[k]))))
                }
            },
            damped_inverse: narrow(&self.damped_inverse),
            unknown: narrow(&self.unknown),
            runs: self.runs.clone(),
        }
    }
}

impl<T: Real> Level<T> {
    /// A x on the cells of `run`, for one channel's plane `x`, into `out`.
    fn product(&self, x: &[T], run: &std::ops::Range<usize>, out: &mut [T]) {
        let step = |k: usize| self.grid.step(OFFSETS[k]);
        let at = |k: usize| &x[run.start.wrapping_add_signed(step(k))..][..run.len()];
        let out = &mut out[..run.len()];
        match &self.operator {
            Operator::Image { diagonal } => {
                let (up, row, down) = (at(1), at(4), at(7));
                let (left, right) = (at(3), at(5));
                let (a, b, c, d) = (at(0), at(2), at(6), at(8));
                let diagonal = &diagonal[run.clone()];
                let (edge, corner) = (T::of(WEIGHTS[1]), T::of(WEIGHTS[0]));
                for j in 0..out.len() {
                    let edges = up[j] + down[j] + left[j] + right[j];
                    let corners = a[j] + b[j] + c[j] + d[j];
                    out[j] = diagonal[j] * row[j] - edge * edges - corner * corners;
                }
            }
            Operator::Stencil(stencil) => {
                out.fill(T::ZERO);
                for (k, plane) in stencil.iter().enumerate() {
                    let coefficients = &plane[run.clone()];
                    for ((o, &a), &v) in out.iter_mut().zip(coefficients).zip(at(k)) {
                        *o += a * v;
                    }
                }
            }
        }
    }

    /// `combine(out, A x, run)` over every run, channel by channel: `out` and `A x` are
    /// the run's cells, `run` the channel plane's cells they are.
    fn with_product(
        &self,
        x: &[T],
        out: &mut [T],
        mut combine: impl FnMut(&mut [T], &[T], std::ops::Range<usize>),
    ) {
        let grid = self.grid;
        let mut product = vec![T::ZERO; grid.width];
        for c in 0..3 {
            let plane = grid.plane(x, c);
            let offset = c * grid.cells();
            let out = grid.plane_mut(out, c);
            for run in &self.runs {
                self.product(plane, run, &mut product);
                let cells = offset + run.start..offset + run.end;
                combine(&mut out[run.clone()], &product[..run.len()], cells);
            }
        }
    }

    /// y = A x.
    fn apply(&self, x: &[T], y: &mut [T]) {
        self.with_product(x, y, |out, product, _| out.copy_from_slice(product));
    }

    /// r − A z.
    fn residual(&self, r: &[T], z: &[T], out: &mut [T]) {
        self.with_product(z, out, |out, product, cells| {
            let r = &r[cells];
            for ((o, &p), &r) in out.iter_mut().zip(product).zip(r) {
                *o = r - p;
            }
        });
    }

    /// One damped Jacobi sweep towards A z = r, from `z` into `out`.
    fn smooth(&self, r: &[T], z: &[T], out: &mut [T]) {
        let plane = self.grid.cells();
        self.with_product(z, out, |out, product, cells| {
            let d = &self.damped_inverse[cells.start % plane..][..out.len()];
            let (r, z) = (&r[cells.clone()], &z[cells]);
            for j in 0..out.len() {
                out[j] = z[j] + d[j] * (r[j] - product[j]);
            }
        });
    }

    /// Pᵀ r (r is zero off the unknowns): along the rows, then the columns. Coarse
    /// cell I takes fine cell 2I whole and half of each odd neighbour, the whole of the
    /// last odd one (it has no coarse cell after it); the halo reads as zero. Into
    /// `out`, every cell of which it writes.
    fn restrict(&self, r: &[T], coarse: Grid, out: &mut [T]) {
        let fine = self.grid;
        let (w, cw) = (fine.width, coarse.width);
        let half = T::of(0.5);
        let mut rows = vec![T::ZERO; fine.height * cw];
        for c in 0..3 {
            let r = fine.plane(r, c);
            for (y, row) in rows.chunks_exact_mut(cw).enumerate() {
                // The row with the halo cell on each side: cell x is at x + 1.
                let f = &r[fine.index(y, 0) - 1..][..w + 2];
                for (x, t) in row.iter_mut().enumerate() {
                    *t = f[2 * x + 1] + half * (f[2 * x] + f[2 * x + 2]);
                }
                if w.is_multiple_of(2) {
                    row[cw - 1] += half * f[w];
                }
            }
            let out = coarse.plane_mut(out, c);
            for y in 0..coarse.height {
                let target = &mut out[coarse.index(y, 0)..][..cw];
                let centre = &rows[2 * y * cw..][..cw];
                target.copy_from_slice(centre);
                // The odd rows either side: half of each, the whole of the last.
                let odd = [(y > 0).then(|| 2 * y - 1), Some(2 * y + 1)];
                for i in odd.into_iter().flatten().filter(|&i| i < fine.height) {
                    let last = i + 1 == fine.height && fine.height.is_multiple_of(2);
                    let weight = if last { T::of(1.0) } else { half };
                    for (t, &v) in target.iter_mut().zip(&rows[i * cw..][..cw]) {
                        *t += weight * v;
                    }
                }
            }
        }
    }

    /// z += P z_c on the unknowns: along the columns, then the rows.
    fn prolong(&self, coarse: Grid, zc: &[T], z: &mut [T]) {
        let fine = self.grid;
        let (w, cw) = (fine.width, coarse.width);
        let half = T::of(0.5);
        let mut row = vec![T::ZERO; cw];
        for c in 0..3 {
            let (zc, z) = (coarse.plane(zc, c), fine.plane_mut(z, c));
            for y in 0..fine.height {
                let (py, npy) = parents(y, coarse.height);
                row.fill(T::ZERO);
                for &(iy, wy) in &py[..npy] {
                    let source = &zc[coarse.index(iy, 0)..][..cw];
                    let wy = T::of(wy);
                    for (t, &v) in row.iter_mut().zip(source) {
                        *t += wy * v;
                    }
                }
                let base = fine.index(y, 0);
                let (z, unknown) = (&mut z[base..base + w], &self.unknown[base..base + w]);
                for x in 0..cw {
                    z[2 * x] += unknown[2 * x] * row[x];
                    if 2 * x + 1 < w {
                        let between = match row.get(x + 1) {
                            Some(&next) => half * (row[x] + next),
                            None => row[x],
                        };
                        z[2 * x + 1] += unknown[2 * x + 1] * between;
                    }
                }
            }
        }
    }
}

/// The levels of one mask's multigrid, finest first, down to a single cell.
struct Multigrid {
    levels: Vec<Level<f32>>,
}

impl Multigrid {
    /// The levels below `fine`, each built from the one above in f64, kept in f32.
    fn new(fine: &Level<f64>) -> Multigrid {
        let mut levels = vec![fine.narrow()];
        let mut last = None;
        loop {
            let above = last.as_ref().unwrap_or(fine);
            if (above.grid.height == 1 && above.grid.width == 1) || above.runs.is_empty() {
                break;
            }
            let coarse = above.galerkin();
            levels.push(coarse.narrow());
            last = Some(coarse);
        }
        Multigrid { levels }
    }

    /// Every level's vectors for [`Multigrid::cycle`].
    fn scratch(&self) -> Vec<Scratch> {
        let zeros = |level: &Level<f32>| level.grid.zeros();
        self.levels
            .iter()
            .map(|level| Scratch {
                r: zeros(level),
                z: zeros(level),
                next: zeros(level),
            })
            .collect()
    }

    /// z ≈ A⁻¹ r by one V-cycle from zero, r and z this level's in `scratch` (the
    /// first). Symmetric (Jacobi is, as many sweeps after as before, restriction = Pᵀ)
    /// and positive definite, as conjugate gradients need.
    fn cycle(&self, depth: usize, scratch: &mut [Scratch]) {
        let level = &self.levels[depth];
        let grid = level.grid;
        let (Scratch { r, z, next }, below) =
            scratch.split_first_mut().expect("scratch for every level");
        let coarse = self.levels.get(depth + 1);
        // The first sweep from zero; on a single cell, the exact solution.
        let first = if coarse.is_some() {
            1.0
        } else {
            1.0 / JACOBI as f32
        };
        for c in 0..3 {
            let z = grid.plane_mut(z, c).iter_mut();
            for ((z, r), d) in z.zip(grid.plane(r, c)).zip(&level.damped_inverse) {
                *z = first * d * r;
            }
        }
        let Some(coarse) = coarse else {
            return;
        };
        for _ in 1..SWEEPS {
            level.smooth(r, z, next);
            std::mem::swap(z, next);
        }
        level.residual(r, z, next);
        level.restrict(next, coarse.grid, &mut below[0].r);
        self.cycle(depth + 1, below);
        level.prolong(coarse.grid, &below[0].z, z);
        for _ in 0..SWEEPS {
            level.smooth(r, z, next);
            std::mem::swap(z, next);
        }
    }
}

/// One level's vectors, kept over the cycles of a solve: its right-hand side, its
/// correction, and a second vector for the sweeps. Only the cells of unknowns are ever
/// written, but for `r` and `z`, whose every cell is.
struct Scratch {
    r: Vec<f32>,
    z: Vec<f32>,
    next: Vec<f32>,
}

/// Σ a·b in eight running sums, so that it vectorises (one sum is a chain of
/// dependent additions).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += a[k] * b[k];
        }
    }
    sums.iter().sum::<f64>() + tail
}

/// One mask's equations on the image's grid: row u says `d_u·x_u − Σ w·x_j (removed
/// neighbours j) = Σ w·value (kept ones)`, d_u the weights of its neighbours in the
/// image.
struct System {
    /// The equations, in f64.
    fine: Level<f64>,
    /// Their preconditioner, in f32.
    multigrid: Multigrid,
    rhs: Vec<f64>,
}

impl System {
    fn new(image: &Image, keep: &[bool]) -> System {
        let (h, w) = (image.height, image.width);
        let plane = h * w;
        let grid = Grid {
            height: h,
            width: w,
        };
        let mut diagonal = vec![0.0; grid.cells()];
        let mut rhs = grid.zeros();
        for pixel in (0..plane).filter(|&p| !keep[p]) {
            let (y, x) = (pixel / w, pixel % w);
            let cell = grid.index(y, x);
            for ((dy, dx), weight) in NEIGHBOURS {
                let (ny, nx) = (y as isize + dy, x as isize + dx);
                if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                diagonal[cell] += weight;
                let neighbour = ny as usize * w + nx as usize;
                if keep[neighbour] {
                    for c in 0..3 {
                        rhs[c * grid.cells() + cell] +=
                            weight * image.input[c * plane + neighbour] as f64;
                    }
                }
            }
        }
        let fine = Level::new(grid, Operator::Image { diagonal });
        System {
            multigrid: Multigrid::new(&fine),
            fine,
            rhs,
        }
    }

    fn grid(&self) -> Grid {
        self.fine.grid
    }

    /// z ≈ A⁻¹ r, by one V-cycle in f32.
    fn precondition(&self, r: &[f64], scratch: &mut [Scratch], z: &mut [f64]) {
        for (to, &from) in scratch[0].r.iter_mut().zip(r) {
            *to = from as f32;
        }
        self.multigrid.cycle(0, scratch);
        for (to, &from) in z.iter_mut().zip(&scratch[0].z) {
            *to = f64::from(from);
        }
    }

    /// Preconditioned conjugate gradients from zero, each channel its own system (they
    /// share the matrix, so one pass over it serves all three); the solution as three
    /// planes of padded cells, and the iterations it took. Flexible (Polak–Ribière's
    /// β): the f32 cycle is not exactly the same linear map at every iteration.
    fn solve(&self) -> (Vec<f64>, usize) {
        let level = &self.fine;
        let grid = level.grid;
        let dot = |a: &[f64], b: &[f64]| -> Rgb {
            std::array::from_fn(|c| dot(grid.plane(a, c), grid.plane(b, c)))
        };
        let b = &self.rhs;
        let mut x = grid.zeros();
        if level.runs.is_empty() {
            return (x, 0);
        }
        let mut r = b.clone();
        let mut scratch = self.multigrid.scratch();
        let (mut z, mut previous) = (grid.zeros(), grid.zeros());
        self.precondition(&r, &mut scratch, &mut z);
        let mut p = z.clone();
        let mut rz = dot(&r, &z);
        let limit = dot(b, b).map(|bb| TOLERANCE * TOLERANCE * bb.max(1e-30));
        let mut ap = grid.zeros();
        for iteration in 0..MAX_ITERATIONS {
            let rr = dot(&r, &r);
            if (0..3).all(|c| rr[c] <= limit[c]) {
                return (x, iteration);
            }
            level.apply(&p, &mut ap);
            let pap = dot(&p, &ap);
            let alpha: Rgb =
                std::array::from_fn(|c| if pap[c] > 0.0 { rz[c] / pap[c] } else { 0.0 });
            for (c, alpha) in alpha.into_iter().enumerate() {
                let (p, ap) = (grid.plane(&p, c), grid.plane(&ap, c));
                let x = grid.plane_mut(&mut x, c).iter_mut();
                for (x, p) in x.zip(p) {
                    *x += alpha * p;
                }
                let r = grid.plane_mut(&mut r, c).iter_mut();
                for (r, ap) in r.zip(ap) {
                    *r -= alpha * ap;
                }
            }
            std::mem::swap(&mut z, &mut previous);
            self.precondition(&r, &mut scratch, &mut z);
            let next = dot(&r, &z);
            let before = dot(&r, &previous);
            let beta: Rgb = std::array::from_fn(|c| {
                if rz[c] > 0.0 {
                    (next[c] - before[c]) / rz[c]
                } else {
                    0.0
                }
            });
            rz = next;
            for (c, beta) in beta.into_iter().enumerate() {
                let p = grid.plane_mut(&mut p, c).iter_mut();
                for (p, z) in p.zip(grid.plane(&z, c)) {
                    *p = z + beta * *p;
                }
            }
        }
        (x, MAX_ITERATIONS)
    }
}

/// The same conjugate gradients and V-cycle on whole tensors `[masks, channels, H, W]`
/// in f64: a level's operator is nine coefficient planes `[masks, 1, h, w]`, applied as
/// products with shifted copies of the padded vector; zero rows (kept pixels) keep the
/// vectors zero there, as on the CPU.
mod batched {
    use super::*;

    type Field = Tensor<4>;

    fn zero_halo(x: Field) -> Field {
        x.pad([(1, 1), (1, 1)], PadMode::Constant(0.0))
    }

    /// `padded` (with its halo) read at (y + dy, x + dx) for every cell (y, x).
    fn shifted(padded: &Field, (dy, dx): (isize, isize)) -> Field {
        let [b, c, h, w] = padded.dims();
        let (y, x) = ((1 + dy) as usize, (1 + dx) as usize);
        padded
            .clone()
            .slice([0..b, 0..c, y..y + h - 2, x..x + w - 2])
    }

    fn upload(values: Vec<f64>, shape: [usize; 4], device: &Device) -> Field {
        Tensor::from_data(TensorData::new(values, shape), (device, DType::F64))
    }

    fn download(x: Field) -> Option<Vec<f64>> {
        x.try_into_data().ok()?.convert::<f64>().try_into_vec().ok()
    }

    fn dot(a: &Field, b: &Field) -> Field {
        (a.clone() * b.clone()).sum_dims(&[2, 3])
    }

    struct Level {
        /// At [`OFFSETS`]; the centre is the diagonal.
        stencil: Vec<Field>,
        inverse_diagonal: Field,
        /// 1 on the unknowns, 0 elsewhere.
        unknowns: Field,
    }

    impl Level {
        fn new(stencil: Vec<Field>) -> Level {
            let diagonal = stencil[CENTRE].clone();
            let positive = diagonal.clone().greater_elem(0.0);
            let zero = diagonal.zeros_like();
            Level {
                inverse_diagonal: zero
                    .clone()
                    .mask_where(positive.clone(), diagonal.clone().recip()),
                unknowns: zero.mask_where(positive, diagonal.ones_like()),
                stencil,
            }
        }

        fn size(&self) -> (usize, usize) {
            let [_, _, h, w] = self.unknowns.dims();
            (h, w)
        }

        fn apply(&self, x: &Field) -> Field {
            let padded = zero_halo(x.clone());
            let mut y = self.stencil[CENTRE].clone() * x.clone();
            for (k, &offset) in OFFSETS.iter().enumerate() {
                if k != CENTRE {
                    y = y + self.stencil[k].clone() * shifted(&padded, offset);
                }
            }
            y
        }

        fn smooth(&self, r: &Field, z: Field) -> Field {
            let correction = (r.clone() - self.apply(&z)) * self.inverse_diagonal.clone();
            z + correction.mul_scalar(JACOBI)
        }

        /// P z_c onto this level's unknowns.
        fn prolong(&self, zc: Field) -> Field {
            let (h, w) = self.size();
            let z = interpolate(interpolate(zc, 2, h), 3, w);
            z * self.unknowns.clone()
        }

        /// Pᵀ A P by probing: coarse cells of one colour (row and column mod 3) are
        /// three apart, so A_c times their indicator holds, at each coarse cell, its
        /// coefficient towards the one neighbour of that colour.
        fn galerkin(&self) -> Level {
            let (h, w) = self.size();
            let (hc, wc) = (h.div_ceil(2), w.div_ceil(2));
            let colour = |i: usize| (i / wc % 3) * 3 + i % wc % 3;
            let probes: Vec<f64> = (0..9)
                .flat_map(|c| (0..hc * wc).map(move |i| f64::from(colour(i) == c)))
                .collect();
            let probes = upload(probes, [1, 9, hc, wc], &self.unknowns.device());
            let columns = restrict(
                restrict(self.apply(&self.prolong(probes.clone())), 2, hc),
                3,
                wc,
            );
            // Coefficient k of cell I is in the probe of I + offset's colour.
            let padded = zero_halo(probes);
            let stencil = OFFSETS
                .iter()
                .map(|&offset| (columns.clone() * shifted(&padded, offset)).sum_dim(1))
                .collect();
            Level::new(stencil)
        }
    }

    /// Linear interpolation along `dim` onto `fine` cells, as [`parents`] does it.
    fn interpolate(coarse: Field, dim: usize, fine: usize) -> Field {
        let mut shape = coarse.dims();
        let n = shape[dim];
        let next = if n > 1 {
            Tensor::cat(
                vec![
                    coarse.clone().slice_dim(dim, 1..n),
                    coarse.clone().slice_dim(dim, n - 1..n),
                ],
                dim,
            )
        } else {
            coarse.clone()
        };
        let between = (coarse.clone() + next).mul_scalar(0.5);
        shape[dim] = 2 * n;
        Tensor::stack::<5>(vec![coarse, between], dim + 1)
            .reshape(shape)
            .slice_dim(dim, 0..fine)
    }

    /// The transpose of [`interpolate`]: along `dim`, onto `coarse` cells.
    fn restrict(fine: Field, dim: usize, coarse: usize) -> Field {
        let mut padding = [(0, 0); 4];
        padding[dim] = (0, 2 * coarse - fine.dims()[dim]);
        let fine = fine.pad(padding, PadMode::Constant(0.0));
        let mut shape = fine.dims();
        shape[dim] = coarse;
        let mut pairs = [2; 5];
        for (i, &n) in shape.iter().enumerate() {
            pairs[i + usize::from(i > dim)] = n;
        }
        let pairs: Tensor<5> = fine.reshape(pairs);
        let on = pairs.clone().slice_dim(dim + 1, 0..1).reshape(shape);
        let half = pairs
            .slice_dim(dim + 1, 1..2)
            .reshape(shape)
            .mul_scalar(0.5);
        // Half of an odd cell goes to the coarse cell before it, half to the one after
        // (the same one past the last).
        let out = on + half.clone();
        if coarse == 1 {
            return out + half;
        }
        let mut before = [(0, 0); 4];
        before[dim] = (1, 0);
        let after = half
            .clone()
            .slice_dim(dim, 0..coarse - 1)
            .pad(before, PadMode::Constant(0.0));
        before[dim] = (coarse - 1, 0);
        let last = half
            .slice_dim(dim, coarse - 1..coarse)
            .pad(before, PadMode::Constant(0.0));
        out + after + last
    }

    /// V-cycle from zero, as [`Multigrid::cycle`].
    fn cycle(levels: &[Level], r: Field) -> Field {
        let Some((level, coarser)) = levels.split_first() else {
            return r;
        };
        if coarser.is_empty() {
            return r * level.inverse_diagonal.clone();
        }
        let mut z = (r.clone() * level.inverse_diagonal.clone()).mul_scalar(JACOBI);
        for _ in 1..SWEEPS {
            z = level.smooth(&r, z);
        }
        let (hc, wc) = coarser[0].size();
        let residual = r.clone() - level.apply(&z);
        let zc = cycle(coarser, restrict(restrict(residual, 2, hc), 3, wc));
        z = z + level.prolong(zc);
        for _ in 0..SWEEPS {
            z = level.smooth(&r, z);
        }
        z
    }

    /// The fine level of every mask, and the right-hand sides `[masks, 3, H, W]`.
    fn equations(image: &Image, keeps: &[Vec<bool>], device: &Device) -> (Level, Field) {
        let (h, w) = (image.height, image.width);
        let removed: Vec<f64> = keeps.iter().flatten().map(|&k| f64::from(!k)).collect();
        let removed = upload(removed, [keeps.len(), 1, h, w], device);
        let input = image.input.iter().map(|&v| v as f64).collect();
        let input = upload(input, [1, 3, h, w], device);
        let kept = zero_halo(input * (removed.ones_like() - removed.clone()));
        let inside = zero_halo(removed.ones_like());
        let removed_halo = zero_halo(removed.clone());
        let mut stencil = vec![removed.zeros_like(); 9];
        let mut diagonal = removed.zeros_like();
        let mut rhs = Tensor::zeros([keeps.len(), 3, h, w], (device, DType::F64));
        for (offset, weight) in NEIGHBOURS {
            diagonal = diagonal + shifted(&inside, offset).mul_scalar(weight);
            stencil[stencil_index(offset.0, offset.1)] =
                (removed.clone() * shifted(&removed_halo, offset)).mul_scalar(-weight);
            rhs = rhs + shifted(&kept, offset).mul_scalar(weight);
        }
        stencil[CENTRE] = diagonal * removed.clone();
        (Level::new(stencil), rhs * removed)
    }

    /// Every mask's solution `[masks, 3, H, W]` (flattened), and the iterations of the
    /// slowest; `None` if reading back fails.
    pub(super) fn solve(
        image: &Image,
        keeps: &[Vec<bool>],
        device: &Device,
    ) -> Option<(Vec<f64>, usize)> {
        let masks = keeps.len();
        let (fine, b) = equations(image, keeps, device);
        let mut levels = vec![fine];
        while let Some(last) = levels.last()
            && last.size() != (1, 1)
        {
            let coarse = last.galerkin();
            levels.push(coarse);
        }
        let limit: Vec<f64> = download(dot(&b, &b))?
            .into_iter()
            .map(|bb| TOLERANCE * TOLERANCE * bb.max(1e-30))
            .collect();
        let mut x = b.zeros_like();
        let mut r = b;
        let mut z = cycle(&levels, r.clone());
        let mut p = z.clone();
        let mut rz = dot(&r, &z);
        let mut iterations = MAX_ITERATIONS;
        for iteration in 0..MAX_ITERATIONS {
            // A mask stops once all three channels have, as on the CPU.
            let rr = download(dot(&r, &r))?;
            let running: Vec<f64> = (0..masks)
                .map(|m| f64::from((0..3).any(|c| rr[3 * m + c] > limit[3 * m + c])))
                .collect();
            if running.iter().all(|&r| r == 0.0) {
                iterations = iteration;
                break;
            }
            let running = upload(running, [masks, 1, 1, 1], device);
            let ap = levels[0].apply(&p);
            let pap = dot(&p, &ap);
            let alpha = pap
                .zeros_like()
                .mask_where(pap.clone().greater_elem(0.0), rz.clone() / pap)
                * running;
            x = x + alpha.clone() * p.clone();
            r = r - alpha * ap;
            z = cycle(&levels, r.clone());
            let next = dot(&r, &z);
            let beta = rz
                .zeros_like()
                .mask_where(rz.clone().greater_elem(0.0), next.clone() / rz);
            rz = next;
            p = z + beta * p;
        }
        Some((download(x)?, iterations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image<'a>(input: &'a [f32], shown: &'a [f32], height: usize, width: usize) -> Image<'a> {
        Image {
            input,
            height,
            width,
            shown,
            probability: 0.5,
            seed: 1,
        }
    }

    /// A smooth map of two blobs, and a textured input, as a CAM and a photo give.
    fn scene(height: usize, width: usize) -> (Vec<f32>, Vec<f32>) {
        let blob = |y: f32, x: f32, cy: f32, cx: f32, s: f32| {
            (-((y - cy).powi(2) + (x - cx).powi(2)) / (2.0 * s * s)).exp()
        };
        let (hf, wf) = (height as f32, width as f32);
        let shown: Vec<f32> = (0..height * width)
            .map(|i| {
                let (y, x) = ((i / width) as f32, (i % width) as f32);
                0.8 * blob(y, x, 0.3 * hf, 0.6 * wf, 0.2 * hf.max(wf))
                    + 0.5 * blob(y, x, 0.75 * hf, 0.2 * wf, 0.1 * hf.max(wf))
                    + 0.01 * ((y * 0.7).sin() * (x * 1.3).cos())
            })
            .collect();
        let mut normal = Normal::new(3);
        let plane = height * width;
        let input: Vec<f32> = (0..3 * plane)
            .map(|i| {
                let (c, y, x) = (i / plane, (i % plane) / width, i % width);
                (y as f32 * 0.05 + c as f32).sin() + (x as f32 * 0.11).cos() + 0.3 * normal.sample()
            })
            .collect();
        (input, shown)
    }

    /// The removed pixels of percentile p: those at or above it.
    fn keep_below(shown: &[f32], p: f32) -> Vec<bool> {
        let mut sorted = shown.to_vec();
        sorted.sort_by(f32::total_cmp);
        let threshold = sorted[((p / 100.0) * (sorted.len() - 1) as f32) as usize];
        shown.iter().map(|&v| v < threshold).collect()
    }

    /// The scalar solution at the removed pixels, `[channel][removed pixel]`, and its
    /// iterations.
    fn scalar(img: &Image, keep: &[bool]) -> (Vec<Vec<f64>>, usize) {
        let system = System::new(img, keep);
        let (solution, iterations) = system.solve();
        let grid = system.grid();
        let values = (0..3)
            .map(|c| {
                removed(keep)
                    .map(|p| solution[c * grid.cells() + grid.index(p / img.width, p % img.width)])
                    .collect()
            })
            .collect();
        (values, iterations)
    }

    fn removed(keep: &[bool]) -> impl Iterator<Item = usize> + '_ {
        (0..keep.len()).filter(|&p| !keep[p])
    }

    fn ssor(img: &Image, keep: &[bool]) -> Vec<Vec<f64>> {
        let reference = reference::Laplace::new(keep, img.height, img.width);
        let solution = reference.solve(&reference.rhs(img));
        (0..3)
            .map(|c| solution.iter().map(|v| v[c]).collect())
            .collect()
    }

    fn worst(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn agrees_with_the_ssor_solver_at_every_percentile() {
        let (h, w) = (64, 80);
        let (input, shown) = scene(h, w);
        let img = image(&input, &shown, h, w);
        for p in [10.0, 50.0, 90.0] {
            let keep = keep_below(&shown, p);
            let (values, iterations) = scalar(&img, &keep);
            let diff = worst(&values, &ssor(&img, &keep));
            assert!(diff < ACCURACY, "percentile {p}: {diff}");
            assert!(iterations <= 12, "percentile {p}: {iterations} iterations");
        }
    }

    #[test]
    fn the_solution_is_the_neighbour_mean() {
        let (h, w) = (37, 53);
        let (input, shown) = scene(h, w);
        let img = image(&input, &shown, h, w);
        let keep = keep_below(&shown, 40.0);
        let plane = h * w;
        let out = impute(&img, &keep, 0.0, &mut Normal::new(0));
        for p in removed(&keep) {
            let (y, x) = ((p / w) as isize, (p % w) as isize);
            for c in 0..3 {
                let (mut sum, mut weights) = (0.0, 0.0);
                for ((dy, dx), weight) in NEIGHBOURS {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny >= 0 && nx >= 0 && ny < h as isize && nx < w as isize {
                        sum += weight * out[c * plane + (ny * w as isize + nx) as usize] as f64;
                        weights += weight;
                    }
                }
                let mean = sum / weights;
                let value = out[c * plane + p] as f64;
                assert!((value - mean).abs() < 1e-5, "({y}, {x}): {value} vs {mean}");
            }
        }
    }

    #[test]
    fn odd_sizes_and_borders() {
        for (h, w) in [(37, 53), (7, 224), (224, 7), (1, 9), (2, 2)] {
            let (input, shown) = scene(h, w);
            let img = image(&input, &shown, h, w);
            // The removed pixels touch the border on every side.
            let frame: Vec<bool> = (0..h * w)
                .map(|p| {
                    let (y, x) = (p / w, p % w);
                    y > 0 && x > 0 && y + 1 < h && x + 1 < w && (x + y) % 5 != 0
                })
                .collect();
            for keep in [keep_below(&shown, 30.0), keep_below(&shown, 80.0), frame] {
                if keep.iter().all(|&k| k) {
                    continue;
                }
                let (values, _) = scalar(&img, &keep);
                let diff = worst(&values, &ssor(&img, &keep));
                assert!(diff < ACCURACY, "{h}×{w}: {diff}");
            }
        }
    }

    #[test]
    fn nothing_removed_or_everything_but_one() {
        let (h, w) = (9, 13);
        let (input, shown) = scene(h, w);
        let img = image(&input, &shown, h, w);
        let all = vec![true; h * w];
        assert_eq!(impute(&img, &all, 0.01, &mut Normal::new(1)), input);
        // One kept pixel: the rest has nothing else to be the mean of.
        let plane = h * w;
        let kept = 4 * w + 7;
        let one: Vec<bool> = (0..plane).map(|p| p == kept).collect();
        let out = impute(&img, &one, 0.0, &mut Normal::new(1));
        for c in 0..3 {
            for p in 0..plane {
                let (v, k) = (out[c * plane + p], input[c * plane + kept]);
                assert!((v - k).abs() < 1e-5, "channel {c}, pixel {p}: {v} vs {k}");
            }
        }
        // Nothing kept: no values to spread, zeros (as the SSOR solver gave).
        let none = vec![false; plane];
        let out = impute(&img, &none, 0.0, &mut Normal::new(1));
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_noise_is_drawn_as_before() {
        let (h, w) = (16, 16);
        let (input, shown) = scene(h, w);
        let img = image(&input, &shown, h, w);
        let keep = keep_below(&shown, 50.0);
        let plane = h * w;
        let exact = impute(&img, &keep, 0.0, &mut Normal::new(5));
        let noisy = impute(&img, &keep, 0.01, &mut Normal::new(5));
        let mut normal = Normal::new(5);
        for c in 0..3 {
            for p in removed(&keep) {
                let expected = exact[c * plane + p] + 0.01 * normal.sample();
                assert_eq!(noisy[c * plane + p], expected);
            }
        }
    }

    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    fn cpu() -> Device {
        Device::libtorch()
    }

    #[cfg(feature = "tch")]
    #[test]
    fn tensors_agree_with_the_scalar_path() {
        for (h, w) in [(64, 80), (37, 53), (7, 224), (1, 9)] {
            let (input, shown) = scene(h, w);
            let img = image(&input, &shown, h, w);
            let keeps: Vec<Vec<bool>> = [0.0, 10.0, 50.0, 90.0, 100.0]
                .iter()
                .map(|&p| keep_below(&shown, p))
                .chain([vec![true; h * w]])
                .collect();
            let (solutions, iterations) = batched::solve(&img, &keeps, &cpu()).unwrap();
            let plane = h * w;
            let mut slowest = 0;
            for (keep, solution) in keeps.iter().zip(solutions.chunks(3 * plane)) {
                let (values, its) = scalar(&img, keep);
                slowest = slowest.max(its);
                let tensor: Vec<Vec<f64>> = (0..3)
                    .map(|c| removed(keep).map(|p| solution[c * plane + p]).collect())
                    .collect();
                let diff = worst(&values, &tensor);
                assert!(diff < 1e-6, "{h}×{w}: {diff}");
            }
            assert!(
                iterations.abs_diff(slowest) <= 1,
                "{iterations} vs {slowest}"
            );
        }
        // Through the public path, noise included: the same images.
        let (input, shown) = scene(24, 24);
        let img = image(&input, &shown, 24, 24);
        let keeps = vec![keep_below(&shown, 30.0), keep_below(&shown, 70.0)];
        let mut normals = vec![Normal::new(1), Normal::new(2)];
        let batch = impute_batch(&img, &keeps, 0.01, &mut normals, &cpu()).unwrap();
        for ((keep, seed), out) in keeps.iter().zip([1, 2]).zip(&batch) {
            let one = impute(&img, keep, 0.01, &mut Normal::new(seed));
            let diff = one
                .iter()
                .zip(out)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-6, "{diff}");
        }
    }

    /// 18 solves of a 224 × 224 image, as ROAD's two directions at nine percentiles, on
    /// `threads` threads.
    fn time_solves(
        threads: usize,
        solve: impl Fn(&[bool]) -> usize + Sync,
    ) -> (std::time::Duration, Vec<usize>) {
        let (input, shown) = scene(224, 224);
        let inverted: Vec<f32> = shown.iter().map(|v| 1.0 - v).collect();
        let keeps: Vec<Vec<bool>> = [&shown, &inverted]
            .iter()
            .flat_map(|map| (1..10).map(|i| keep_below(map, 10.0 * i as f32)))
            .collect();
        let _ = input;
        let start = std::time::Instant::now();
        let per_thread = keeps.len().div_ceil(threads);
        let iterations = std::thread::scope(|scope| {
            let handles: Vec<_> = keeps
                .chunks(per_thread)
                .map(|chunk| {
                    let solve = &solve;
                    scope.spawn(move || chunk.iter().map(|k| solve(k)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        (start.elapsed(), iterations)
    }

    #[test]
    #[ignore = "prints times; cargo test --release --lib road::tests::measure -- --ignored --nocapture"]
    fn measure() {
        let (input, shown) = scene(224, 224);
        let img = image(&input, &shown, 224, 224);
        // The least of three runs: other work on the machine only adds.
        let best = |run: &dyn Fn() -> (std::time::Duration, Vec<usize>)| {
            (0..3).map(|_| run()).min_by_key(|(t, _)| *t).unwrap()
        };
        for threads in [1, 2] {
            let (old, old_its) = best(&|| {
                time_solves(threads, |keep| {
                    let reference = reference::Laplace::new(keep, 224, 224);
                    reference.solve_counting(&reference.rhs(&img), TOLERANCE).1
                })
            });
            let (new, new_its) =
                best(&|| time_solves(threads, |keep| System::new(&img, keep).solve().1));
            println!(
                "{threads} thread(s): SSOR {old:?} {old_its:?}; multigrid {new:?} {new_its:?}"
            );
        }
        let inverted: Vec<f32> = shown.iter().map(|v| 1.0 - v).collect();
        let keeps: Vec<Vec<bool>> = [&shown, &inverted]
            .iter()
            .flat_map(|map| (1..10).map(|i| keep_below(map, 10.0 * i as f32)))
            .collect();
        let diff = keeps
            .iter()
            .map(|keep| worst(&scalar(&img, keep).0, &ssor(&img, keep)))
            .fold(0.0, f64::max);
        println!("max |multigrid − SSOR| over the 18: {diff:e}");
        #[cfg(feature = "tch")]
        {
            let device = cpu();
            for round in [&keeps[..9], &keeps[9..]] {
                let start = std::time::Instant::now();
                let (_, iterations) = batched::solve(&img, round, &device).unwrap();
                println!(
                    "tensors (libtorch CPU), 9 masks: {:?}, {iterations} iterations",
                    start.elapsed()
                );
            }
        }
    }

    /// The SSOR-preconditioned solver camwatch used before the multigrid, kept to check
    /// the new one against.
    mod reference {
        use super::super::*;

        const SSOR_OMEGA: f64 = 1.8;

        pub struct Laplace {
            unknown: Vec<usize>,
            diagonal: Vec<f64>,
            links: Vec<(u32, f64)>,
            starts: Vec<usize>,
            known: Vec<Vec<(u32, f64)>>,
        }

        impl Laplace {
            pub fn new(keep: &[bool], h: usize, w: usize) -> Laplace {
                let unknown: Vec<usize> = (0..h * w).filter(|&i| !keep[i]).collect();
                let mut index = vec![u32::MAX; h * w];
                for (u, &pixel) in unknown.iter().enumerate() {
                    index[pixel] = u as u32;
                }
                let mut system = Laplace {
                    diagonal: vec![0.0; unknown.len()],
                    links: Vec::with_capacity(unknown.len() * 8),
                    starts: Vec::with_capacity(unknown.len() + 1),
                    known: vec![Vec::new(); unknown.len()],
                    unknown,
                };
                for (u, &pixel) in system.unknown.iter().enumerate() {
                    system.starts.push(system.links.len());
                    let (y, x) = ((pixel / w) as isize, (pixel % w) as isize);
                    for ((dy, dx), weight) in NEIGHBOURS {
                        let (ny, nx) = (y + dy, x + dx);
                        if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                            continue;
                        }
                        system.diagonal[u] += weight;
                        let neighbour = ny as usize * w + nx as usize;
                        if keep[neighbour] {
                            system.known[u].push((neighbour as u32, weight));
                        } else {
                            system.links.push((index[neighbour], weight));
                        }
                    }
                }
                system.starts.push(system.links.len());
                system
            }

            pub fn rhs(&self, image: &Image) -> Vec<Rgb> {
                let plane = image.height * image.width;
                self.known
                    .iter()
                    .map(|k| {
                        let mut b = [0.0; 3];
                        for &(j, weight) in k {
                            for (c, b) in b.iter_mut().enumerate() {
                                *b += weight * image.input[c * plane + j as usize] as f64;
                            }
                        }
                        b
                    })
                    .collect()
            }

            fn row(&self, u: usize) -> &[(u32, f64)] {
                &self.links[self.starts[u]..self.starts[u + 1]]
            }

            fn apply(&self, x: &[Rgb], y: &mut [Rgb]) {
                for (u, y) in y.iter_mut().enumerate() {
                    let mut v = x[u].map(|x| x * self.diagonal[u]);
                    for &(j, weight) in self.row(u) {
                        for c in 0..3 {
                            v[c] -= weight * x[j as usize][c];
                        }
                    }
                    *y = v;
                }
            }

            fn precondition(&self, r: &[Rgb], z: &mut [Rgb]) {
                let scale = SSOR_OMEGA * (2.0 - SSOR_OMEGA);
                for u in 0..r.len() {
                    let mut v = r[u].map(|r| r * scale);
                    for &(j, weight) in self.row(u) {
                        if (j as usize) < u {
                            for c in 0..3 {
                                v[c] += SSOR_OMEGA * weight * z[j as usize][c];
                            }
                        }
                    }
                    z[u] = v.map(|v| v / self.diagonal[u]);
                }
                for u in 0..r.len() {
                    z[u] = z[u].map(|z| z * self.diagonal[u]);
                }
                for u in (0..r.len()).rev() {
                    let mut v = z[u];
                    for &(j, weight) in self.row(u) {
                        if (j as usize) > u {
                            for c in 0..3 {
                                v[c] += SSOR_OMEGA * weight * z[j as usize][c];
                            }
                        }
                    }
                    z[u] = v.map(|v| v / self.diagonal[u]);
                }
            }

            /// The exact solution, near enough: its error is far below the
            /// multigrid's.
            pub fn solve(&self, b: &[Rgb]) -> Vec<Rgb> {
                self.solve_counting(b, 1e-10).0
            }

            pub fn solve_counting(&self, b: &[Rgb], tolerance: f64) -> (Vec<Rgb>, usize) {
                let n = b.len();
                let dot = |a: &[Rgb], b: &[Rgb]| {
                    let mut s = [0.0; 3];
                    for (a, b) in a.iter().zip(b) {
                        for c in 0..3 {
                            s[c] += a[c] * b[c];
                        }
                    }
                    s
                };
                let mut x: Vec<Rgb> = b
                    .iter()
                    .zip(&self.diagonal)
                    .map(|(b, d)| b.map(|b| b / d))
                    .collect();
                let mut r = vec![[0.0; 3]; n];
                self.apply(&x, &mut r);
                for (r, b) in r.iter_mut().zip(b) {
                    *r = [b[0] - r[0], b[1] - r[1], b[2] - r[2]];
                }
                let mut z = vec![[0.0; 3]; n];
                self.precondition(&r, &mut z);
                let mut p = z.clone();
                let mut rz = dot(&r, &z);
                let limit = dot(b, b).map(|bb| tolerance * tolerance * bb.max(1e-30));
                let mut ap = vec![[0.0; 3]; n];
                for iteration in 0..10 * n.max(50) {
                    let rr = dot(&r, &r);
                    if (0..3).all(|c| rr[c] <= limit[c]) {
                        return (x, iteration);
                    }
                    self.apply(&p, &mut ap);
                    let pap = dot(&p, &ap);
                    let alpha: Rgb =
                        std::array::from_fn(|c| if pap[c] > 0.0 { rz[c] / pap[c] } else { 0.0 });
                    for i in 0..n {
                        for c in 0..3 {
                            x[i][c] += alpha[c] * p[i][c];
                            r[i][c] -= alpha[c] * ap[i][c];
                        }
                    }
                    self.precondition(&r, &mut z);
                    let next = dot(&r, &z);
                    let beta: Rgb =
                        std::array::from_fn(|c| if rz[c] > 0.0 { next[c] / rz[c] } else { 0.0 });
                    rz = next;
                    for i in 0..n {
                        for c in 0..3 {
                            p[i][c] = z[i][c] + beta[c] * p[i][c];
                        }
                    }
                }
                (x, 10 * n.max(50))
            }
        }
    }
}

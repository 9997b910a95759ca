//! EigenCAM's first principal component, on the CPU: the activations are small (a few
//! hundred positions × a few thousand channels) and an exact symmetric eigensolver on
//! the smaller Gram matrix beats any iteration's convergence worries.

/// The projection of each position's (channel-centred) activation vector on the first
/// principal component, signed so that it correlates positively with the channel sum,
/// then ReLU. `a` is one sample's `[channels, positions]`, row-major.
pub fn first_component(a: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    let (k, n) = (channels, positions);
    // x[i][c]: position i, channel c, centred over positions.
    let mut x = vec![0f64; n * k];
    for c in 0..k {
        let row = &a[c * n..(c + 1) * n];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        for i in 0..n {
            x[i * k + c] = row[i] as f64 - mean;
        }
    }
    let projection: Vec<f64> = if n <= k {
        // X Xᵀ u = λ u  →  X v = σ u with σ = √λ.
        let gram = gram(&x, n, k, |i, j| (i * k, j * k, 1));
        let (lambda, u) = top_eigenpair(gram, n);
        u.iter().map(|&ui| ui * lambda.max(0.0).sqrt()).collect()
    } else {
        // Xᵀ X v = λ v  →  projection X v.
        let gram = gram(&x, k, n, |c, d| (c, d, k));
        let (_, v) = top_eigenpair(gram, k);
        (0..n)
            .map(|i| (0..k).map(|c| x[i * k + c] * v[c]).sum())
            .collect()
    };
    let channel_sum: Vec<f64> = (0..n)
        .map(|i| (0..k).map(|c| a[c * n + i] as f64).sum())
        .collect();
    let sign = if covariance(&projection, &channel_sum) < 0.0 {
        -1.0
    } else {
        1.0
    };
    projection
        .iter()
        .map(|&p| (sign * p).max(0.0) as f32)
        .collect()
}

/// The m×m Gram matrix of m vectors of length `len` in `x`; `at(i, j)` gives the offsets
/// of vectors i and j and the stride between their elements.
fn gram(
    x: &[f64],
    m: usize,
    len: usize,
    at: impl Fn(usize, usize) -> (usize, usize, usize),
) -> Vec<f64> {
    let mut g = vec![0f64; m * m];
    for i in 0..m {
        for j in i..m {
            let (oi, oj, stride) = at(i, j);
            let s: f64 = (0..len)
                .map(|t| x[oi + t * stride] * x[oj + t * stride])
                .sum();
            g[i * m + j] = s;
            g[j * m + i] = s;
        }
    }
    g
}

fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum()
}

/// Largest eigenvalue and its unit eigenvector of a symmetric m×m matrix, by cyclic
/// Jacobi rotations.
fn top_eigenpair(mut s: Vec<f64>, m: usize) -> (f64, Vec<f64>) {
    let mut v = vec![0f64; m * m];
    for i in 0..m {
        v[i * m + i] = 1.0;
    }
    let scale: f64 = s
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..60 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| s[i * m + j] * s[i * m + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-13 * scale {
            break;
        }
        for p in 0..m {
            for q in p + 1..m {
                let apq = s[p * m + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (s[q * m + q] - s[p * m + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for r in 0..m {
                    let (srp, srq) = (s[r * m + p], s[r * m + q]);
                    s[r * m + p] = c * srp - sn * srq;
                    s[r * m + q] = sn * srp + c * srq;
                }
                for r in 0..m {
                    let (spr, sqr) = (s[p * m + r], s[q * m + r]);
                    s[p * m + r] = c * spr - sn * sqr;
                    s[q * m + r] = sn * spr + c * sqr;
                }
                for r in 0..m {
                    let (vrp, vrq) = (v[r * m + p], v[r * m + q]);
                    v[r * m + p] = c * vrp - sn * vrq;
                    v[r * m + q] = sn * vrp + c * vrq;
                }
            }
        }
    }
    let best = (0..m)
        .max_by(|&i, &j| s[i * m + i].total_cmp(&s[j * m + j]))
        .unwrap_or(0);
    (
        s[best * m + best],
        (0..m).map(|r| v[r * m + best]).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dominant_direction_with_positive_sign() {
        // Two channels over four positions: channel 1 = 2 × channel 0, so all variance
        // lies along (1, 2); positions with more activation must come out larger.
        let a = [0.0, 1.0, 2.0, 3.0, 0.0, 2.0, 4.0, 6.0];
        let p = first_component(&a, 2, 4);
        let norm = 5f32.sqrt();
        let expected = [0.0, 0.0, 0.5 * norm, 1.5 * norm];
        for (x, y) in p.iter().zip(expected) {
            assert!((x - y).abs() < 1e-5, "{p:?}");
        }
    }

    #[test]
    fn jacobi_eigenpair() {
        let (l, v) = top_eigenpair(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((l - 3.0).abs() < 1e-12);
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
    }
}

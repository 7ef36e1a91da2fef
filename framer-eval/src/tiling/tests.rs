use super::*;
use burn::backend::Flex;
use std::convert::Infallible;

type B = Flex;

fn ramp_tensor(n: usize, c: usize, h: usize, w: usize) -> Tensor<B, 4> {
    let data: Vec<f32> = (0..n * c * h * w)
        .map(|i| ((i * 37) % 101) as f32 / 101.0)
        .collect();
    Tensor::from_data(TensorData::new(data, [n, c, h, w]), &Default::default())
}

fn host(x: Tensor<B, 4>) -> Vec<f32> {
    x.into_data().to_vec().unwrap()
}

#[test]
fn starts_cover_the_side_with_the_requested_overlap() {
    assert_eq!(tile_starts(10, 16, 4), vec![0]);
    assert_eq!(tile_starts(16, 16, 4), vec![0]);
    // stride 12: 0, 12, then the last tile is moved back to end at 40
    assert_eq!(tile_starts(40, 16, 4), vec![0, 12, 24]);
    assert_eq!(tile_starts(41, 16, 4), vec![0, 12, 24, 25]);
    for len in 17..80 {
        let s = tile_starts(len, 16, 5);
        assert_eq!(*s.last().unwrap() + 16, len);
        for pair in s.windows(2) {
            assert!(pair[1] > pair[0] && pair[1] - pair[0] <= 11, "{s:?}");
        }
    }
}

#[test]
fn reflection_mirrors_about_the_edge_sample() {
    let n = 4; // 0 1 2 3 | 2 1 0 1 2 3
    let got: Vec<usize> = (0..10).map(|i| reflect_index(i, n)).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
    assert_eq!(reflect_index(-1, n), 1);
    assert_eq!(reflect_index(5, 1), 0);
}

#[test]
fn identity_closure_reproduces_the_input_at_odd_sizes() {
    for window in [BlendWindow::default(), BlendWindow::LinearRamp] {
        for (h, w) in [(37, 23), (16, 16), (17, 50), (5, 9)] {
            let x = ramp_tensor(2, 3, h, w);
            let config = TileConfig::new(16, 5, 1).with_window(window);
            let y = process_tiled(x.clone(), &config, |t, _| Ok::<_, Infallible>(t)).unwrap();
            assert_eq!(y.dims(), [2, 3, h, w]);
            let (a, b) = (host(x), host(y));
            let err = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            // one f32 rounding of Σw·x / Σw
            assert!(err < 1e-6, "{window:?} {h}x{w}: max error {err}");
        }
    }
}

#[test]
fn constant_stays_constant_across_seams() {
    // a constant image through the identity, and any image through a constant-producing
    // closure (a different constant per tile would show seams; one constant must not)
    let x = Tensor::<B, 4>::full([1, 3, 45, 31], 0.625, &Default::default());
    let config = TileConfig::new(12, 4, 1);
    let y = host(process_tiled(x, &config, |t, _| Ok::<_, Infallible>(t)).unwrap());
    assert!(y.iter().all(|&v| (v - 0.625).abs() < 1e-6));

    let x = ramp_tensor(1, 3, 45, 31);
    let config = TileConfig::new(12, 4, 3).with_window(BlendWindow::LinearRamp);
    let y = process_tiled(x, &config, |t, _| {
        let [n, _, s, _] = t.dims();
        Ok::<_, Infallible>(Tensor::<B, 4>::full(
            [n, 4, 3 * s, 3 * s],
            -0.25,
            &t.device(),
        ))
    })
    .unwrap();
    assert_eq!(y.dims(), [1, 4, 135, 93]);
    assert!(host(y).iter().all(|&v| (v + 0.25).abs() < 1e-6));
}

#[test]
fn linear_ramp_blends_two_different_tiles_into_a_linear_ramp() {
    // width 28, tile 16, overlap 4: tiles start at columns 0 and 12. Tile 0 returns 0, tile 1
    // returns 1. In the overlap (columns 12..16) the weights are w0 = 0.8, 0.6, 0.4, 0.2 and
    // w1 = 0.2, 0.4, 0.6, 0.8, so the output is 0 … 0, 0.2, 0.4, 0.6, 0.8, 1 … 1.
    let x = Tensor::<B, 4>::zeros([1, 1, 16, 28], &Default::default());
    let config = TileConfig::new(16, 4, 1).with_window(BlendWindow::LinearRamp);
    let y = process_tiled(x, &config, |t, r| {
        Ok::<_, Infallible>(t.ones_like().mul_scalar(r.index as f32))
    })
    .unwrap();
    let y = host(y);
    let mut expected = [0f32; 28];
    for (c, v) in expected.iter_mut().enumerate().skip(12) {
        *v = if c < 16 { 0.2 * (c - 11) as f32 } else { 1.0 };
    }
    for row in 0..16 {
        for c in 0..28 {
            assert!(
                (y[row * 28 + c] - expected[c]).abs() < 1e-6,
                "row {row} col {c}: {}",
                y[row * 28 + c]
            );
        }
    }
}

#[test]
fn scaled_tiles_match_a_whole_image_nearest_upsampling() {
    // nearest ×2 is local, so tiling must give exactly the whole-image result
    let x = ramp_tensor(1, 2, 21, 34);
    let xs = host(x.clone());
    let mut expected = vec![0f32; 2 * 42 * 68];
    for c in 0..2 {
        for y in 0..42 {
            for xx in 0..68 {
                expected[(c * 42 + y) * 68 + xx] = xs[(c * 21 + y / 2) * 34 + xx / 2];
            }
        }
    }
    let config = TileConfig::new(8, 3, 2);
    let tiled = process_tiled(x, &config, |t, _| {
        let [n, c, s, _] = t.dims();
        let v = host(t.clone());
        let mut o = vec![0f32; n * c * 4 * s * s];
        for ch in 0..n * c {
            for y in 0..2 * s {
                for xx in 0..2 * s {
                    o[(ch * 2 * s + y) * 2 * s + xx] = v[(ch * s + y / 2) * s + xx / 2];
                }
            }
        }
        Ok::<_, Infallible>(Tensor::<B, 4>::from_data(
            TensorData::new(o, [n, c, 2 * s, 2 * s]),
            &t.device(),
        ))
    })
    .unwrap();
    assert_eq!(tiled.dims(), [1, 2, 42, 68]);
    let tiled = host(tiled);
    let err = tiled
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-6, "max error {err}");
}

#[test]
fn small_images_are_reflection_padded_before_the_model_sees_them() {
    // a 3x5 image with tile 8: the model sees the reflected 8x8 tile
    let x = ramp_tensor(1, 1, 3, 5);
    let xs = host(x.clone());
    let config = TileConfig::new(8, 2, 1);
    let mut seen = Vec::new();
    let y = process_tiled(x, &config, |t, r| {
        assert_eq!(r.count, 1);
        seen = host(t.clone());
        Ok::<_, Infallible>(t)
    })
    .unwrap();
    assert_eq!(y.dims(), [1, 1, 3, 5]);
    for row in 0..8 {
        for col in 0..8 {
            let src = reflect_index(row as isize, 3) * 5 + reflect_index(col as isize, 5);
            assert_eq!(seen[row * 8 + col], xs[src]);
        }
    }
}

#[test]
fn bad_settings_and_bad_outputs_are_errors() {
    let x = ramp_tensor(1, 3, 20, 20);
    for bad in [
        TileConfig::new(0, 0, 1),
        TileConfig::new(8, 8, 1),
        TileConfig::new(8, 2, 0),
    ] {
        let e = process_tiled(x.clone(), &bad, |t, _| Ok::<_, Infallible>(t)).unwrap_err();
        assert!(matches!(e, EvalError::InvalidTiling(_)), "{e}");
    }
    let config = TileConfig::new(8, 2, 2);
    let e = process_tiled(x.clone(), &config, |t, _| Ok::<_, Infallible>(t)).unwrap_err();
    match e {
        EvalError::TileOutputShape {
            expected,
            got,
            index,
            ..
        } => {
            assert_eq!((expected, got, index), ([1, 3, 16, 16], [1, 3, 8, 8], 0));
        }
        other => panic!("unexpected {other}"),
    }
    let e = process_tiled(x, &config, |_, r| {
        Err::<Tensor<B, 4>, _>(std::io::Error::other(format!("boom {}", r.index)))
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("tile 0") && e.to_string().contains("boom 0"),
        "{e}"
    );
}

#[test]
fn image_round_trip_through_tiles() {
    let img = Image::from_fn(19, 11, |c, y, x| (c * 7 + y * 3 + x) as f32 / 60.0).unwrap();
    let out = process_tiled_image::<B, _, _>(
        &img,
        &Default::default(),
        &TileConfig::new(8, 3, 1),
        |t, _| Ok::<_, Infallible>(t),
    )
    .unwrap();
    assert_eq!((out.width(), out.height()), (19, 11));
    let err = img
        .data()
        .iter()
        .zip(out.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-6);
}

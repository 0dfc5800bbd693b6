//! The wasm bindings' logic, run natively: the shipped weights load, digits come out in
//! order and reproducibly, bad requests are refused.

use cdcgan_web::DigitGenerator;

fn shipped() -> DigitGenerator {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/generator.safetensors"
    ))
    .unwrap();
    DigitGenerator::new(&bytes).unwrap()
}

#[test]
fn digits_are_reproducible_distinct_and_in_range() {
    let g = shipped();
    let a = g.generate(&[2, 0, 2, 6], 0).unwrap();
    assert_eq!(a.len(), 4 * 784);
    assert_eq!(a, g.generate(&[2, 0, 2, 6], 0).unwrap());
    assert_ne!(a, g.generate(&[2, 0, 2, 6], 1).unwrap());
    let cells: Vec<&[u8]> = a.chunks(784).collect();
    for c in &cells {
        let lit = c.iter().filter(|&&p| p > 127).count();
        assert!((20..400).contains(&lit), "{lit} bright pixels");
    }
    // The two 2s get their own noise.
    assert_ne!(cells[0], cells[2]);
    assert!(g.generate(&[], 0).unwrap().is_empty());
}

#[test]
fn bad_labels_and_bad_weights_are_errors() {
    let g = shipped();
    let err = g.generate(&[1, 10], 0).err().unwrap().to_string();
    assert!(err.contains("label 10"), "{err}");
    let err = DigitGenerator::new(b"not a checkpoint")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("generator.safetensors"), "{err}");
}

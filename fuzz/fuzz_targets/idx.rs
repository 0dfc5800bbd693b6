//! Any bytes, raw or gzip, into the IDX parser: an error or a well-formed array, never a
//! panic, and never more memory than the bytes can back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = mnist_data::IdxArray::from_bytes(data) {
        let elems: usize = array.dims().iter().product();
        assert_eq!(array.data().len(), elems);
        assert!(array.data().len() <= data.len() * 1032 + 1024);
    }
});

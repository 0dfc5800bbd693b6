//! Any bytes into the checkpoint loader, then into the networks: an error or a usable
//! model, never a panic.
#![no_main]

use candle_core::Device;
use cdcgan_model::{Checkpoint, Gan, generator_from_checkpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = Device::Cpu;
    let Ok(ckpt) = Checkpoint::from_bytes(data, "fuzz", &dev) else {
        return;
    };
    // Only configurations small enough to build quickly; the size bound was checked.
    if ckpt.config().tensor_values() > 5_000_000 {
        return;
    }
    let _ = generator_from_checkpoint(&ckpt, true, &dev);
    if let Ok(gan) = Gan::new(*ckpt.config(), 0, &dev) {
        let _ = gan.import(&ckpt, "");
    }
});

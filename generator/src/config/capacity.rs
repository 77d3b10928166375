//! Refuses VU counts this machine cannot hold, before anything is allocated.
//!
//! A VU costs memory from the moment it exists (its task, its state, for
//! WebSocket flows its connection buffers). Measured: about 3 KB per HTTP VU
//! at 4,000 VUs and 7.5 KB per WebSocket connection at 100,000
//! (BENCHMARKS.md §1 and §5). The estimate uses a lower figure, so only
//! counts that cannot fit whatever the flow are refused; the rest is the
//! VU-sizing advice printed at start.

/// Bytes a VU needs at least.
pub const BYTES_PER_VU: u64 = 2048;

/// This machine's memory in bytes (`MemTotal`), if it can be read.
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `Err` with the estimate when `vus` VUs cannot fit in `memory` bytes.
pub fn check_vus(vus: u64, memory: u64) -> Result<(), String> {
    let need = vus.saturating_mul(BYTES_PER_VU);
    if need <= memory {
        return Ok(());
    }
    Err(format!(
        "{vus} VUs need an estimated {} of memory (at least {BYTES_PER_VU} bytes per VU) and this machine has {}; lower the VU count or split the test over several generators with executionSegment",
        gib(need),
        gib(memory)
    ))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_what_cannot_fit() {
        let memory = 24 << 30;
        assert!(check_vus(100_000, memory).is_ok());
        let e = check_vus(1_000_000_000, memory).unwrap_err();
        assert!(e.starts_with("1000000000 VUs need an estimated 1907.3 GiB of memory"), "{e}");
        assert!(e.contains("this machine has 24.0 GiB"), "{e}");
        assert!(check_vus(u64::MAX, memory).is_err());
        assert!(machine_memory().is_some_and(|m| m > 0));
    }
}

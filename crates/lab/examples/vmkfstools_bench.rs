//! Copy rate of the lab's vmkfstools engine next to a same-machine baseline (`std::fs::copy` of the
//! same flat file, which uses `copy_file_range` on Linux), printed as MB/s and as a ratio.
//!
//! Run: `cargo run --release -p co-lab --example vmkfstools_bench [size_mib] [work_dir]`
//! (default 512 MiB in the system temp dir). Figures are warm-cache: every copy reads a source the
//! previous step just wrote or read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use co_lab::san::{ArrayVendor, San};
use co_lab::vmkfstools::{self, CloneRequest};
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

/// Writes a monolithicFlat disk of `size` bytes; `filled` decides whether every byte is data.
fn write_disk(dir: &Path, name: &str, size: u64, filled: bool) -> PathBuf {
    let flat = dir.join(format!("{name}-flat.vmdk"));
    let mut file = std::fs::File::create(&flat).expect("create the flat extent");
    if filled {
        let mut block = vec![0u8; MIB as usize];
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = (i % 251) as u8 + 1;
        }
        for _ in 0..size / MIB {
            file.write_all(&block).expect("write the flat extent");
        }
    } else {
        file.set_len(size).expect("size the flat extent");
        std::os::unix::fs::FileExt::write_all_at(&file, &[0x5a; 4096], size / 3)
            .expect("write a block");
    }
    file.sync_all().expect("sync the flat extent");
    let descriptor = dir.join(format!("{name}.vmdk"));
    std::fs::write(
        &descriptor,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
             createType=\"vmfs\"\n\n# Extent description\nRW {} VMFS \"{name}-flat.vmdk\"\n",
            size / 512
        ),
    )
    .expect("write the descriptor");
    descriptor
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

async fn engine_run(
    san: &San,
    descriptor: &Path,
    target_array: &str,
    size: u64,
    label: &str,
) -> (Duration, vmkfstools::CloneReport) {
    let name = format!("/vol/{label}/lun0");
    let volume = san
        .create_volume(target_array, &name, size)
        .expect("create the target volume");
    let rdm = descriptor.with_file_name(format!("{label}-rdmdisk.vmdk"));
    let request = CloneRequest {
        source_descriptor: descriptor.to_path_buf(),
        target: volume,
        rdm_descriptor: rdm.clone(),
        source_array: Some("array-a".to_owned()),
        source_lun: None,
        san: san.clone(),
    };
    let started = Instant::now();
    let report = vmkfstools::clone(request, |_| {}, CancellationToken::new())
        .await
        .expect("clone");
    let elapsed = started.elapsed();
    san.delete_volume(target_array, &name)
        .expect("delete the target volume");
    for leftover in [rdm.clone(), vmkfstools::rdm_mapping_path(&rdm)] {
        std::fs::remove_file(leftover).expect("remove the RDM files");
    }
    (elapsed, report)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let size_mib: u64 = args
        .next()
        .map(|a| a.parse().expect("size in MiB"))
        .unwrap_or(512);
    let parent = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(&parent).expect("create a work dir");
    let size = size_mib * MIB;

    let san = San::new(&work.path().join("san"));
    san.add_array("array-a", ArrayVendor::Ontap).expect("array");
    san.add_array("array-b", ArrayVendor::Ontap).expect("array");
    let vm = work.path().join("ds1");
    std::fs::create_dir_all(&vm).expect("datastore dir");
    let full = write_disk(&vm, "full", size, true);

    // Interleaved rounds, best of each: the box's disk and page cache are shared, so single runs
    // are noisy. Every copy ends with its data flushed to the device, baseline included.
    let rounds = 3;
    let mut baseline = Duration::MAX;
    let mut offloaded = Duration::MAX;
    let mut host = Duration::MAX;
    for round in 0..rounds {
        let copy_path = work.path().join("baseline.raw");
        let started = Instant::now();
        std::fs::copy(vm.join("full-flat.vmdk"), &copy_path).expect("baseline copy");
        std::fs::File::open(&copy_path)
            .and_then(|f| f.sync_data())
            .expect("flush the baseline copy");
        baseline = baseline.min(started.elapsed());
        std::fs::remove_file(&copy_path).expect("remove the baseline copy");

        let (elapsed, report) =
            engine_run(&san, &full, "array-a", size, &format!("xcopy{round}")).await;
        assert!(report.offloaded);
        offloaded = offloaded.min(elapsed);
        let (elapsed, report) =
            engine_run(&san, &full, "array-b", size, &format!("host{round}")).await;
        assert!(!report.offloaded);
        host = host.min(elapsed);
    }
    let baseline_rate = rate(size, baseline);
    let sparse = write_disk(&vm, "sparse", 4 * size, false);
    let (sparse_time, _) = engine_run(&san, &sparse, "array-a", 4 * size, "sparse").await;

    println!(
        "vmkfstools engine, {size_mib} MiB fully allocated disk, best of {rounds} (warm cache)"
    );
    println!(
        "  baseline std::fs::copy     {:>9.1} MB/s  ({:.3} s)",
        baseline_rate,
        baseline.as_secs_f64()
    );
    for (label, elapsed) in [
        ("engine offloaded (XCOPY)", offloaded),
        ("engine host copy", host),
    ] {
        let r = rate(size, elapsed);
        println!(
            "  {label:<26} {r:>9.1} MB/s  ({:.3} s)  ratio to baseline {:.2}",
            elapsed.as_secs_f64(),
            r / baseline_rate
        );
    }
    println!(
        "  engine offloaded, {} MiB disk with 4 KiB of data: {:.3} s ({:.0} MB/s of virtual size)",
        4 * size_mib,
        sparse_time.as_secs_f64(),
        rate(4 * size, sparse_time)
    );
}

//! `GET_FILE` over loopback between two `p2p-core` peers (a [`FileServer`] and [`download`]),
//! beside the plain baselines in the same group: the same file through a loopback socket from a
//! running plain server thread to this thread (file → socket → file), with 1 MiB read/write loops
//! and with `sendfile` + `splice`.
//!
//! Sizes: 1 MiB and 64 MiB; 1 GiB too when `P2P_BENCH_BIG=1` (slow: about a second per
//! iteration). `p2p-load transfer` measures the 1 GiB case with each side in its own process,
//! with peak RSS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::baseline::{Method, PlainFileServer, make_file};
use p2p_benches::sample;
use p2p_core::peer::{DownloadOptions, FileServer, FileServerConfig, Library, download};

const MIB: u64 = 1 << 20;

fn sizes() -> Vec<(&'static str, u64)> {
    let mut sizes = vec![("1MiB", MIB), ("64MiB", 64 * MIB)];
    if std::env::var_os("P2P_BENCH_BIG").is_some_and(|v| v != "0") {
        sizes.push(("1GiB", 1024 * MIB));
    }
    sizes
}

fn transfers(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    for (label, size) in sizes() {
        let src = dir.path().join(format!("src-{label}"));
        make_file(&src, size).expect("source file");
        let name = sample::file(&format!("/shared/{label}.bin"));
        let library = Library::new();
        library.insert(name.clone(), src.clone());
        let server = runtime
            .block_on(async {
                let mut config = FileServerConfig::default();
                config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
                FileServer::start(config, library).await
            })
            .expect("file server");
        let addr = server.local_addr();
        let mut options = DownloadOptions::default();
        options.progress = None;
        let dest: PathBuf = dir.path().join(format!("dest-{label}"));

        let mut group = c.benchmark_group(format!("get_file_{label}"));
        group.throughput(Throughput::Bytes(size));
        if size >= 64 * MIB {
            group.sample_size(10);
            group.warm_up_time(Duration::from_secs(1));
        }
        // Each iteration starts with no destination file, for every contender alike (ext4
        // flushes on close a file that was truncated, or renamed over an existing one).
        group.bench_function("p2p_core", |b| {
            b.iter(|| {
                remove(&dest);
                let got = runtime
                    .block_on(download(addr, &name, &dest, &options))
                    .expect("download");
                assert_eq!(got, size);
            });
        });
        for (id, method) in [
            ("plain_read_write_1MiB", Method::ReadWrite),
            ("plain_sendfile_splice", Method::ZeroCopy),
        ] {
            let plain = PlainFileServer::start(&src, method).expect("plain file server");
            group.bench_function(id, |b| {
                b.iter(|| {
                    remove(&dest);
                    let got = plain.fetch(&dest, method).expect("plain copy");
                    assert_eq!(got, size);
                });
            });
        }
        group.finish();
        runtime.block_on(server.stop());
        remove(&src);
        remove(&dest);
    }
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

criterion_group!(benches, transfers);
criterion_main!(benches);

//! Internet checksum (RFC 1071) at 64 B, 1500 B and 64 KiB: tapir's wide-accumulator sum against
//! a naive 16-bit-word reference, in bytes per second.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use protocols::wire::checksum;

/// The textbook loop: one 16-bit word at a time into a u32, folded at the end.
fn naive(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        if sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [b] = words.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for size in [64usize, 1500, 65536] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        assert_eq!(
            checksum::data(&data),
            naive(&data),
            "implementations disagree"
        );
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("wide", size), &data, |b, d| {
            b.iter(|| checksum::data(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("naive", size), &data, |b, d| {
            b.iter(|| naive(black_box(d)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

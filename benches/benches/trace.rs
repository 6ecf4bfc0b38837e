//! What tracing costs per frame: filter evaluation, decoding a TCP frame to a line, and the
//! worker's hook (off, on with a filter that rejects, on and recording into the ring).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use engine::trace::{
    self, sample, DecodeOptions, Direction, Filter, FrameMeta, LineDecoder, TraceConfig, Tracer,
};

fn tcp_frame() -> Vec<u8> {
    sample::session()
        .into_iter()
        .find(|f| f.what == "request")
        .unwrap()
        .frame
}

fn filters(c: &mut Criterion) {
    let frame = tcp_frame();
    let mut g = c.benchmark_group("trace_filter");
    for expr in [
        "tcp",
        "tcp and port 80",
        "udp and port 53",
        "(host 10.9.0.1 or host 10.9.0.99) and not (port 22 or arp) and in",
    ] {
        let f = Filter::parse(expr).unwrap();
        g.bench_function(expr, |b| {
            b.iter(|| f.matches(black_box(Direction::In), black_box(&frame)))
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let frame = tcp_frame();
    let meta = FrameMeta {
        ts_micros: 1_700_000_000_000_000,
        queue: 0,
        dir: Direction::In,
    };
    let mut g = c.benchmark_group("trace_decode");
    for (name, opts) in [
        ("tcp_line", DecodeOptions::default()),
        (
            "tcp_line_vv_e",
            DecodeOptions {
                verbosity: 2,
                link: true,
                ..DecodeOptions::default()
            },
        ),
    ] {
        let mut d = LineDecoder::new(opts);
        let mut line = String::with_capacity(512);
        g.bench_function(name, |b| {
            b.iter(|| {
                line.clear();
                d.decode(&meta, black_box(&frame), &mut line);
                black_box(line.len())
            })
        });
    }
    g.finish();
}

fn hook(c: &mut Criterion) {
    let frame = tcp_frame();
    let mut g = c.benchmark_group("trace_hook");
    let off = Tracer::off();
    g.bench_function("off", |b| {
        b.iter(|| {
            if off.is_on() {
                off.frame(1, 0, Direction::In, black_box(&frame));
            }
        })
    });
    let (tracer, writer) = trace::start(TraceConfig {
        filter: Some(Filter::parse("udp and port 5353").unwrap()),
        ..TraceConfig::default()
    })
    .unwrap();
    g.bench_function("on_filter_rejects", |b| {
        b.iter(|| tracer.frame(1, 0, Direction::In, black_box(&frame)))
    });
    drop(writer);
    let (tracer, writer) = trace::start(TraceConfig {
        pcap: Some(Box::new(std::io::sink())),
        ..TraceConfig::default()
    })
    .unwrap();
    g.bench_function("on_record_pcapng", |b| {
        b.iter(|| tracer.frame(1, 0, Direction::In, black_box(&frame)))
    });
    let stats = writer.finish();
    eprintln!(
        "on_record_pcapng: recorded {} ring_full {} (frames the writer could not keep up with)",
        stats.recorded, stats.ring_full
    );
    g.finish();
}

criterion_group!(benches, filters, decode, hook);
criterion_main!(benches);

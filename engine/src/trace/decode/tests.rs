use super::*;
use crate::trace::sample;

fn lines(opts: DecodeOptions) -> Vec<String> {
    let mut d = LineDecoder::new(DecodeOptions {
        no_prefix: true,
        ..opts
    });
    sample::session()
        .iter()
        .map(|f| {
            let mut s = String::new();
            let meta = FrameMeta {
                ts_micros: 0,
                queue: 0,
                dir: f.dir,
            };
            d.decode(&meta, &f.frame, &mut s);
            s
        })
        .collect()
}

#[test]
fn dump() {
    for l in lines(DecodeOptions::default()) {
        println!("{l}");
    }
    for l in lines(DecodeOptions { verbosity: 2, link: true, absolute_seq: true, no_prefix: true }) {
        println!("{l}");
    }
}

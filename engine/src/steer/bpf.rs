//! The steering decision as an eBPF program for the tun driver (`TUNSETSTEERINGEBPF`): the
//! kernel runs it on every frame it queues to the tap and puts the frame on the queue it
//! returns (modulo the queue count), so each flow's frames arrive on the queue of the worker that
//! owns it and are not handed over at all.
//!
//! Without it the kernel picks a queue from its flow table, learned from the frames tapir writes;
//! the table holds 4,096 flows and forgets one after 3 s, so under many short connections most
//! new flows land on a queue chosen by a keyed hash user space cannot compute, and half of them
//! (with two queues) are handed over. The program computes exactly [`super::flow_owner`] over the
//! same fields [`super::classify`] reads (tested against it by an interpreter below), so the
//! worker that reads a frame finds it is its own; the hand-off path stays for anything else.
//!
//! Kernel facts (include/uapi/linux/bpf.h, drivers/net/tun.c `tun_ebpf_select_queue`): a
//! socket-filter program sees the frame from its Ethernet header; `LD_ABS`/`LD_IND` load 1, 2 or
//! 4 bytes at an offset in network order into R0 as a host integer (with R6 holding the context)
//! and end the program with 0 when the offset is past the frame; the return value modulo the
//! number of queues is the queue.

use protocols::iface::DHCP_CLIENT_PORT;

/// One `struct bpf_insn`: opcode, destination and source registers, offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes the kernel reads (little-endian register nibbles: dst low, src high).
    pub fn encode(&self) -> u64 {
        let regs = (self.dst & 0x0f) | (self.src << 4);
        u64::from(self.code)
            | u64::from(regs) << 8
            | u64::from(self.off as u16) << 16
            | u64::from(self.imm as u32) << 32
    }
}

// Instruction classes, sizes, modes and operations (include/uapi/linux/bpf_common.h, bpf.h).
const LD: u8 = 0x00;
const ALU64: u8 = 0x07;
const JMP: u8 = 0x05;
const H: u8 = 0x08;
const B: u8 = 0x10;
const DW: u8 = 0x18;
const IMM: u8 = 0x00;
const ABS: u8 = 0x20;
const IND: u8 = 0x40;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const MUL: u8 = 0x20;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const MOD: u8 = 0x90;
const XOR: u8 = 0xa0;
const MOV: u8 = 0xb0;
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const JSET: u8 = 0x40;
const EXIT: u8 = 0x90;

/// Registers: R0 result and load target, R1 the context on entry, R6 the context for loads,
/// R7 the hash, R8 the IPv4 header length, R9 a 16-bit field kept across loads; R1..R5 are
/// clobbered by every load and serve as scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;

const ETH: i32 = 14;

/// A tiny assembler: jumps to labels, patched at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, usize)>,
}

#[derive(Clone, Copy)]
struct Label(usize);

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }
    fn alu_k(&mut self, op: u8, dst: u8, imm: i32) {
        self.op(ALU64 | op | K, dst, 0, 0, imm);
    }
    fn alu_x(&mut self, op: u8, dst: u8, src: u8) {
        self.op(ALU64 | op | X, dst, src, 0, 0);
    }
    fn ld_imm64(&mut self, dst: u8, v: u64) {
        self.op(LD | DW | IMM, dst, 0, 0, v as u32 as i32);
        self.op(0, 0, 0, 0, (v >> 32) as u32 as i32);
    }
    fn ld_abs(&mut self, size: u8, off: i32) {
        self.op(LD | ABS | size, 0, 0, 0, off);
    }
    fn ld_ind(&mut self, size: u8, reg: u8, off: i32) {
        self.op(LD | IND | size, 0, reg, 0, off);
    }
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }
    fn jump(&mut self, op: u8, reg: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to.0));
        self.op(JMP | op | K, reg, 0, 0, imm);
    }
    fn ret(&mut self, v: i32) {
        self.alu_k(MOV, R0, v);
        self.op(JMP | EXIT, 0, 0, 0, 0);
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, l) in self.fixups {
            let target = self.labels[l].expect("every label is bound");
            self.insns[at].off = (target as isize - at as isize - 1) as i16;
        }
        self.insns
    }

    /// One FNV-1a step over the byte in `reg`: h ^= b; h *= 0x100000001b3, as h*0x1b3 + (h<<40)
    /// (the prime does not fit an immediate). Uses R2 as scratch.
    fn fnv_byte(&mut self, reg: u8) {
        self.alu_x(XOR, R7, reg);
        self.alu_x(MOV, R2, R7);
        self.alu_k(LSH, R2, 40);
        self.alu_k(MUL, R7, 0x1b3);
        self.alu_x(ADD, R7, R2);
    }

    /// FNV-1a over the big-endian bytes of the 16-bit value in `reg` (R1 scratch).
    fn fnv_u16(&mut self, reg: u8) {
        self.alu_x(MOV, R1, reg);
        self.alu_k(RSH, R1, 8);
        self.fnv_byte(R1);
        self.alu_x(MOV, R1, reg);
        self.alu_k(AND, R1, 0xff);
        self.fnv_byte(R1);
    }

    /// FNV-1a over the IPv4 source address, a byte at a time (loads clobber R1..R5 only).
    fn fnv_source_address(&mut self) {
        for i in 0..4 {
            self.ld_abs(B, ETH + 12 + i);
            self.fnv_byte(R0);
        }
    }

    /// The avalanche of [`super::flow_owner`], then the owner: R0 = h % workers; exit.
    fn finish_owner(&mut self, workers: usize) {
        self.alu_x(MOV, R1, R7);
        self.alu_k(RSH, R1, 33);
        self.alu_x(XOR, R7, R1);
        self.ld_imm64(R2, 0xff51_afd7_ed55_8ccd);
        self.alu_x(MUL, R7, R2);
        self.alu_x(MOV, R1, R7);
        self.alu_k(RSH, R1, 33);
        self.alu_x(XOR, R7, R1);
        self.alu_k(MOD, R7, workers as i32);
        self.alu_x(MOV, R0, R7);
        self.op(JMP | EXIT, 0, 0, 0, 0);
    }
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// The program for `workers` queues (2..=256). Frames [`super::classify`] steers by their flow go
/// to the owner's queue; everything else (ARP, ICMP, anything it cannot read) to queue 0, where
/// it is processed or handed to all as it would be anywhere.
pub fn steering_program(workers: usize) -> Vec<Insn> {
    let workers = workers.clamp(1, 256);
    let mut a = Asm::default();
    let other = a.label();
    let fragment = a.label();
    let ports = a.label();
    a.alu_x(MOV, R6, R1);
    a.ld_abs(H, 12);
    a.jump(JNE, R0, 0x0800, other);
    // More fragments, or an offset: steered by (identification, source, protocol).
    a.ld_abs(H, ETH + 6);
    a.jump(JSET, R0, 0x3fff, fragment);
    a.ld_abs(B, ETH);
    a.alu_k(AND, R0, 0x0f);
    a.alu_k(LSH, R0, 2);
    a.alu_x(MOV, R8, R0);
    a.ld_abs(B, ETH + 9);
    a.alu_x(MOV, R9, R0);
    a.jump(JEQ, R9, 6, ports);
    a.jump(JNE, R9, 17, other);
    // UDP to the DHCP client's port: worker 0.
    a.ld_ind(H, R8, ETH + 2);
    a.jump(JEQ, R0, i32::from(DHCP_CLIENT_PORT), other);
    a.bind(ports);
    // flow_owner(local port = destination, remote address = source, remote port = source).
    a.ld_imm64(R7, FNV_BASIS);
    a.ld_ind(H, R8, ETH + 2);
    a.alu_x(MOV, R9, R0);
    a.fnv_u16(R9);
    a.fnv_source_address();
    a.ld_ind(H, R8, ETH);
    a.alu_x(MOV, R9, R0);
    a.fnv_u16(R9);
    a.finish_owner(workers);
    a.bind(fragment);
    // flow_owner(identification, source, protocol as a 16-bit value).
    a.ld_imm64(R7, FNV_BASIS);
    a.ld_abs(H, ETH + 4);
    a.alu_x(MOV, R9, R0);
    a.fnv_u16(R9);
    a.fnv_source_address();
    a.ld_abs(B, ETH + 9);
    a.alu_x(MOV, R9, R0);
    a.fnv_u16(R9);
    a.finish_owner(workers);
    a.bind(other);
    a.ret(0);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::super::{classify, Steer};
    use super::*;

    /// Runs `prog` on `frame` as the kernel would, for the instructions the program uses.
    /// Returns the value and whether a load fell off the frame (the kernel then returns 0).
    fn run(prog: &[Insn], frame: &[u8]) -> (u64, bool) {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "the program loops");
            let i = prog[pc];
            pc += 1;
            let class = i.code & 0x07;
            match class {
                ALU64 => {
                    let v = if i.code & X != 0 {
                        r[i.src as usize]
                    } else {
                        i.imm as i64 as u64
                    };
                    let d = &mut r[i.dst as usize];
                    *d = match i.code & 0xf0 {
                        ADD => d.wrapping_add(v),
                        MUL => d.wrapping_mul(v),
                        AND => *d & v,
                        LSH => *d << (v & 63),
                        RSH => *d >> (v & 63),
                        MOD => *d % v,
                        XOR => *d ^ v,
                        MOV => v,
                        op => panic!("alu op {op:#x}"),
                    };
                }
                LD if i.code == LD | DW | IMM => {
                    let hi = prog[pc].imm as u32 as u64;
                    pc += 1;
                    r[i.dst as usize] = (i.imm as u32 as u64) | hi << 32;
                }
                LD => {
                    let base = if i.code & 0xe0 == IND {
                        r[i.src as usize] as i64
                    } else {
                        0
                    };
                    let at = base + i64::from(i.imm);
                    let n = match i.code & 0x18 {
                        B => 1,
                        H => 2,
                        _ => 4,
                    };
                    let Some(bytes) = usize::try_from(at).ok().and_then(|a| frame.get(a..a + n))
                    else {
                        return (0, true);
                    };
                    r[0] = bytes.iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
                    for reg in &mut r[1..=5] {
                        *reg = 0xdead; // clobbered, as the kernel may
                    }
                }
                JMP if i.code & 0xf0 == EXIT => return (r[0], false),
                JMP => {
                    let d = r[i.dst as usize];
                    let k = i.imm as i64 as u64;
                    let taken = match i.code & 0xf0 {
                        JEQ => d == k,
                        JNE => d != k,
                        JSET => d & k != 0,
                        op => panic!("jmp op {op:#x}"),
                    };
                    if taken {
                        pc = (pc as isize + isize::from(i.off)) as usize;
                    }
                }
                c => panic!("class {c}"),
            }
        }
    }

    fn frame(proto: u8, ihl: u8, frag: u16, src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + usize::from(ihl) * 4 + 8];
        f[12] = 0x08;
        f[14] = 0x40 | ihl;
        f[18..20].copy_from_slice(&0x4d2eu16.to_be_bytes());
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[23] = proto;
        f[26..30].copy_from_slice(&src);
        let l4 = 14 + usize::from(ihl) * 4;
        f[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        f[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
        f
    }

    /// Where `classify` sends a frame for a worker that owns nothing (so never `Here` for a
    /// flow): the owner, or None for frames not steered by flow.
    fn owner(f: &[u8], workers: usize) -> Option<usize> {
        match classify(f, workers, workers) {
            Steer::Owner(o) => Some(o),
            _ => None,
        }
    }

    #[test]
    fn the_program_picks_the_worker_classify_picks() {
        let mut rng = protocols::rand::Rng::new(7);
        for workers in [2usize, 3, 4, 7, 16, 64] {
            let prog = steering_program(workers);
            for n in 0..3000 {
                let proto = [6u8, 17, 1, 6, 17][n % 5];
                let ihl = if n % 7 == 0 { 5 + (n % 3) as u8 } else { 5 };
                let frag = match n % 11 {
                    0 => 0x2000,
                    1 => 0x00b9,
                    2 => 0x4000, // DF only: not a fragment
                    _ => 0,
                };
                let src = (rng.next_u64() as u32).to_be_bytes();
                let (sport, dport) = (rng.next_u64() as u16, rng.next_u64() as u16);
                let f = frame(proto, ihl, frag, src, sport, dport);
                let (got, fell_off) = run(&prog, &f);
                assert!(!fell_off, "{f:?}");
                let want = owner(&f, workers).unwrap_or(0) as u64;
                assert_eq!(got % workers as u64, want, "{workers} workers, frame {f:?}");
            }
            // DHCP replies to the client go to worker 0; ARP and the rest to queue 0.
            let dhcp = frame(17, 5, 0, [10, 0, 0, 1], 67, DHCP_CLIENT_PORT);
            assert_eq!(run(&prog, &dhcp).0, 0);
            let mut arp = vec![0u8; 42];
            arp[12..14].copy_from_slice(&[0x08, 0x06]);
            assert_eq!(run(&prog, &arp), (0, false));
        }
    }

    #[test]
    fn noise_never_loops_and_agrees_whenever_it_reads_the_whole_frame() {
        let mut rng = protocols::rand::Rng::new(9);
        let prog = steering_program(4);
        for n in 0..20_000 {
            let len = (rng.next_u64() % 80) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if n % 2 == 0 && len > 14 {
                f[12..14].copy_from_slice(&[0x08, 0x00]);
            }
            let (got, fell_off) = run(&prog, &f);
            if let (false, Some(o)) = (fell_off, owner(&f, 4)) {
                assert_eq!(got % 4, o as u64, "{f:?}");
            }
        }
    }

    #[test]
    fn jumps_stay_inside_and_the_program_ends_in_exits() {
        for workers in [2, 256] {
            let prog = steering_program(workers);
            assert!(prog.len() < 4096);
            for (at, i) in prog.iter().enumerate() {
                if i.code & 0x07 == JMP && i.code & 0xf0 != EXIT {
                    let to = at as isize + 1 + isize::from(i.off);
                    assert!((0..prog.len() as isize).contains(&to), "jump at {at}");
                }
            }
            assert_eq!(prog.last().unwrap().code, JMP | EXIT);
        }
    }
}

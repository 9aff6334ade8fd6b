//! Mutations of an input: bit and byte edits, boundary integers at any offset (the formats'
//! little-endian lengths), inserted, deleted and repeated ranges, splices of other inputs, and
//! tokens of the formats (JSON syntax, field names, magics).

/// A small xorshift generator: reproducible from its seed, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator that yields the same numbers for the same seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Tokens of the formats, inserted or written over an input.
const TOKENS: &[&[u8]] = &[
    b"HOTPATCH",
    b"HOTSTATE",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"4294967296",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\n",
    b"\"command\":",
    b"\"path\":",
    b"\"hello\"",
    b"\"status\"",
    b"\"check\"",
    b"\"apply\"",
    b"\"rollback\"",
    b"\"ok\":",
    b"\"error\":",
    b"\"kind\":",
    b"\"library_len\":",
    b"\"library_sha256\":",
    b"\"redirects\":",
    b"\"states\":",
    b"\"module\":",
    b"\"challenge\":",
    b"\"proof\":",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// Little-endian values written over four bytes: lengths at and around the formats' limits.
const BOUNDARIES: &[u32] = &[
    0,
    1,
    2,
    4,
    95,
    96,
    97,
    0x7fff_ffff,
    0xffff_ffff,
    16 << 20,
    0xffff,
];

/// Applies one to four mutations to `input`; `others` are inputs to splice from.
pub fn mutate(input: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        mutate_once(input, others, rng);
    }
}

fn mutate_once(input: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut Rng) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(9) {
        0 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => input[at.min(len - 1)] = rng.next_u64() as u8,
        2 if len >= 4 => {
            let value = BOUNDARIES[rng.below(BOUNDARIES.len())].to_le_bytes();
            let at = at.min(len - 4);
            input[at..at + 4].copy_from_slice(&value);
        }
        3 => {
            let count = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..count).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let end = (at + 1 + rng.below(16)).min(len);
            input.drain(at.min(len - 1)..end);
        }
        5 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let copy = input[start..end].to_vec();
            input.splice(at..at, copy);
        }
        6 if !others.is_empty() => {
            let other = &others[rng.below(others.len())];
            let start = rng.below(other.len());
            let end = (start + rng.below(256)).min(other.len());
            input.splice(at..at, other[start..end].iter().copied());
        }
        7 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        8 => input.truncate(at),
        _ => input.push(rng.next_u64() as u8),
    }
}

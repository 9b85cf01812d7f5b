//! The key under which a verifier's memo holds a verified token: POLYVAL, the universal hash of AES-GCM-SIV, under
//! a secret key drawn at random for each verifier, over the token's bytes.
//!
//! Why it is safe: the memo answers a token without checking its signature, so no other token may ever find a memoized
//! token's entry. POLYVAL is a polynomial in its key `H` (strictly, in `H · x^-128`, a one-to-one image of it) whose
//! coefficients are the message's 16-byte blocks: here the token's bytes, zero-padded to whole blocks, then one block
//! holding the token's length. For two different tokens of at most `l` blocks the difference of their keys is a nonzero
//! polynomial in `H` of degree at most `l + 1` (the length blocks differ, or at equal length some padded block
//! differs), so the two keys are equal for at most `l + 1` of the 2^128 values of `H`. `H` is drawn from the system's
//! random generator and is never shown, and neither is anything computed from it: keys appear in no error, log or
//! metric, and the maps that hold them (moka's, and each thread's copy in `recent`) place them with SipHash under keys
//! of their own, so not even a lookup's timing depends on a key's bits, only on whether it is there. An attacker
//! without `H` who sends `q` tokens against a memo of `n` entries finds a collision with probability at most `q · n ·
//! (l + 1) / 2^128`; with tokens of at most 16 KiB (`l` = 1024), a million entries and 2^40 tries, about 2^-58. That is
//! the guarantee a keyed MAC gives, which is what this is, with the tag never revealed.
//!
//! Why not SHA-256 (the key until 2026-12-03): collision resistance without a secret costs more. On a 950-byte RS256
//! token SHA-256 took 566 ns and this 187 ns (both with the CPU's instructions for them), and the key is computed
//! for every memo lookup.

use polyval::Polyval;
use polyval::universal_hash::UniversalHash;

/// A token's key in the memo (and in each thread's copy of it).
pub(crate) type MemoKey = [u8; 16];

/// Computes memo keys under one secret, random `H`.
pub(crate) struct MemoKeyer {
    /// POLYVAL set up with `H` (its powers precomputed), copied for each token.
    keyed: Polyval,
}

impl MemoKeyer {
    /// A keyer with a fresh random `H`; `None` when the system's random generator fails (the verifier then runs
    /// without a memo: slower, never less safe).
    pub(crate) fn random() -> Option<Self> {
        let mut h = [0u8; 16];
        aws_lc_rs::rand::fill(&mut h).ok()?;
        // `H = 0` would give every token the same key. Drawn with probability 2^-128, refused all the same.
        if h == [0; 16] {
            return None;
        }
        Some(Self {
            keyed: Polyval::new(&h.into()),
        })
    }

    /// A keyer with the given `H` (tests).
    #[cfg(test)]
    fn with_h(h: [u8; 16]) -> Self {
        Self {
            keyed: Polyval::new(&h.into()),
        }
    }

    /// The memo key of `token`.
    pub(crate) fn key(&self, token: &[u8]) -> MemoKey {
        let mut hash = self.keyed.clone();
        hash.update_padded(token);
        let mut length = [0u8; 16];
        length[..8].copy_from_slice(&(token.len() as u64).to_le_bytes());
        hash.update(&[length.into()]);
        hash.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_differ_anywhere_get_different_keys() {
        let keyer = MemoKeyer::random().expect("system randomness");
        let token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln".to_vec();
        let key = keyer.key(&token);
        assert_eq!(keyer.key(&token), key, "the same token, the same key");
        // One byte changed at each position, a byte added or removed, and trailing zeros (which the zero padding
        // alone would not tell apart: the length block does).
        for at in 0..token.len() {
            let mut changed = token.clone();
            changed[at] ^= 1;
            assert_ne!(keyer.key(&changed), key, "byte {at} changed");
        }
        assert_ne!(keyer.key(&token[..token.len() - 1]), key);
        let mut longer = token.clone();
        longer.push(b'A');
        assert_ne!(keyer.key(&longer), key);
        let mut zeros = token;
        zeros.extend_from_slice(&[0; 3]);
        assert_ne!(keyer.key(&zeros), key);
        assert_ne!(keyer.key(b""), keyer.key(&[0]));
        assert_ne!(keyer.key(&[0; 16]), keyer.key(&[0; 32]));
    }

    /// POLYVAL written out bit by bit from RFC 8452 (section 3: `dot(a, b) = a * b * x^-128` in GF(2^128) modulo
    /// `x^128 + x^127 + x^126 + x^121 + 1`, blocks read little-endian), independent of the crate under test.
    fn reference_polyval(h: [u8; 16], blocks: &[[u8; 16]]) -> [u8; 16] {
        // `x^128` reduced: `x^127 + x^126 + x^121 + 1`.
        const REDUCED: u128 = 0xC200_0000_0000_0000_0000_0000_0000_0001;
        fn dot(a: u128, b: u128) -> u128 {
            let (mut product, mut shifted) = (0u128, a);
            for bit in 0..128 {
                if b >> bit & 1 == 1 {
                    product ^= shifted;
                }
                let carry = shifted >> 127;
                shifted <<= 1;
                if carry == 1 {
                    shifted ^= REDUCED;
                }
            }
            // Times x^-128: divide by x, 128 times (adding the modulus first when the constant term is set).
            for _ in 0..128 {
                product = if product & 1 == 1 {
                    ((product ^ REDUCED) >> 1) | 1 << 127
                } else {
                    product >> 1
                };
            }
            product
        }
        let h = u128::from_le_bytes(h);
        let sum = blocks.iter().fold(0u128, |sum, block| {
            dot(sum ^ u128::from_le_bytes(*block), h)
        });
        sum.to_le_bytes()
    }

    fn hex16(hex: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    #[test]
    fn the_reference_gives_the_rfc_8452_test_vector() {
        let h = hex16("25629347589242761d31f826ba4b757b");
        let x1 = hex16("4f4f95668c83dfb6401762bb2d01a262");
        let x2 = hex16("d1a24ddd2721d006bbe45f20d3c9f362");
        assert_eq!(
            reference_polyval(h, &[x1, x2]),
            hex16("f7a3b47b846119fae5b7866cf5e5b77e")
        );
    }

    /// Every length up to 300 bytes (so every padding, and the crate's four-blocks-at-once path that real tokens
    /// take), and one token-sized input, against the reference: the token zero-padded, then its length block.
    #[test]
    fn keys_are_polyval_of_the_padded_token_and_its_length() {
        let h = hex16("25629347589242761d31f826ba4b757b");
        let keyer = MemoKeyer::with_h(h);
        let bytes: Vec<u8> = (0..1000u32).map(|n| (n * 37 % 251) as u8).collect();
        for len in (0..=300).chain([950]) {
            let token = &bytes[..len];
            let mut blocks: Vec<[u8; 16]> = token
                .chunks(16)
                .map(|chunk| {
                    let mut block = [0u8; 16];
                    block[..chunk.len()].copy_from_slice(chunk);
                    block
                })
                .collect();
            let mut length = [0u8; 16];
            length[..8].copy_from_slice(&(len as u64).to_le_bytes());
            blocks.push(length);
            assert_eq!(
                keyer.key(token),
                reference_polyval(h, &blocks),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn each_verifier_keys_tokens_with_its_own_secret() {
        let (one, two) = (
            MemoKeyer::random().expect("system randomness"),
            MemoKeyer::random().expect("system randomness"),
        );
        let token = b"header.claims.signature";
        assert_ne!(one.key(token), two.key(token));
    }
}

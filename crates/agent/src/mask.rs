//! Masking: the values of secrets (a task's `secret_env`, the notifiers' URLs and signing
//! secrets) never appear in a run's output. They are replaced by `***` as the output is read,
//! before anything keeps or shows it: the stored output, `logs -f` and the API's live stream,
//! the agent's log and the alerts all see the masked bytes only.
//!
//! A value can arrive split across two reads of the pipe: the [`Masker`] holds back the end of
//! each read that could be the start of a secret until the next read (or the end) decides.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a secret's value becomes.
pub const MASK: &[u8] = b"***";

/// Values shorter than this are not masked: hiding every `1` or `yes` in a run's output would
/// make it unreadable and protect nothing (documented in docs/task-file.md).
pub const MIN_SECRET_LEN: usize = 4;

/// The values to mask in the output of a run.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// The values, sorted, once each.
    values: Arc<[String]>,
    /// All the values, longest first where they overlap; `None` when there is nothing to mask.
    matcher: Option<Arc<AhoCorasick>>,
    /// The length of the longest value, in bytes.
    longest: usize,
}

impl Secrets {
    /// The values of `values` that are long enough to mask (see [`MIN_SECRET_LEN`]).
    pub fn new<I, S>(values: I) -> Secrets
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut values: Vec<String> = values
            .into_iter()
            .map(|v| v.as_ref().to_owned())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_unstable();
        values.dedup();
        let longest = values.iter().map(String::len).max().unwrap_or(0);
        // Leftmost-longest: of two values that start at the same byte, the longer is masked
        // whole (a secret that begins with another secret leaves no tail showing).
        let matcher = (!values.is_empty())
            .then(|| AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&values))
            .and_then(Result::ok)
            .map(Arc::new);
        Secrets { values: values.into(), matcher, longest }
    }

    /// These values and `more`.
    pub fn with<I, S>(&self, more: I) -> Secrets
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut more = more.into_iter().peekable();
        if more.peek().is_none() {
            return self.clone();
        }
        let more: Vec<String> = more.map(|v| v.as_ref().to_owned()).collect();
        Secrets::new(self.values.iter().map(String::as_str).chain(more.iter().map(String::as_str)))
    }

    /// Nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `bytes` with every value replaced (for output read in one piece).
    pub fn mask(&self, bytes: &[u8]) -> Vec<u8> {
        let mut masker = self.masker();
        let mut out = masker.push(bytes);
        out.extend(masker.finish());
        out
    }

    /// A masker for output that comes in pieces.
    pub fn masker(&self) -> Masker {
        Masker { secrets: self.clone(), held: Vec::new() }
    }
}

/// Masks a stream of output read in pieces (see [`Secrets::masker`]).
#[derive(Debug)]
pub struct Masker {
    secrets: Secrets,
    /// The end of what was pushed that could still be the start of a value.
    held: Vec<u8>,
}

impl Masker {
    /// Takes the next piece of output; returns what can be shown now, masked. Up to one byte
    /// less than the longest value is held back, until the next piece or [`Masker::finish`].
    pub fn push(&mut self, piece: &[u8]) -> Vec<u8> {
        let Some(matcher) = &self.secrets.matcher else { return piece.to_vec() };
        let mut pending = std::mem::take(&mut self.held);
        pending.extend_from_slice(piece);
        // A value that starts before `hold` ends within `pending`: whether it matches is
        // known. One that starts at or after it may go on in the next piece.
        let hold = pending.len().saturating_sub(self.secrets.longest - 1);
        let mut out = Vec::with_capacity(pending.len());
        let mut at = 0;
        for found in matcher.find_iter(&pending) {
            if found.start() >= hold {
                break;
            }
            out.extend_from_slice(&pending[at..found.start()]);
            out.extend_from_slice(MASK);
            at = found.end();
        }
        let keep = hold.max(at);
        out.extend_from_slice(&pending[at..keep]);
        self.held = pending.split_off(keep);
        out
    }

    /// The end of the output: what was held back, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        let held = std::mem::take(&mut self.held);
        let Some(matcher) = &self.secrets.matcher else { return held };
        let mut out = Vec::with_capacity(held.len());
        let mut at = 0;
        for found in matcher.find_iter(&held) {
            out.extend_from_slice(&held[at..found.start()]);
            out.extend_from_slice(MASK);
            at = found.end();
        }
        out.extend_from_slice(&held[at..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn values_are_masked_wherever_they_appear() {
        let secrets = Secrets::new(["amqp://user:hunter22@queue", "hunter22"]);
        let out = secrets.mask(b"url=amqp://user:hunter22@queue pw=hunter22.");
        assert_eq!(String::from_utf8(out).unwrap(), "url=*** pw=***.");
    }

    #[test]
    fn short_values_are_left_alone() {
        let secrets = Secrets::new(["yes", "1", ""]);
        assert!(secrets.is_empty());
        assert_eq!(secrets.mask(b"yes 1"), b"yes 1");
    }

    #[test]
    fn a_value_split_across_reads_is_masked() {
        let secrets = Secrets::new(["s3cr3t-token"]);
        let mut masker = secrets.masker();
        let mut out = masker.push(b"token: s3cr");
        assert!(out.is_empty(), "what may still be a secret is held back: {out:?}");
        out.extend(masker.push(b"3t-tok"));
        out.extend(masker.push(b"en done\ns3c"));
        out.extend(masker.finish());
        assert_eq!(String::from_utf8(out).unwrap(), "token: *** done\ns3c");
    }

    proptest! {
        /// However the output is cut into reads, the result is that of masking it whole, and
        /// no value survives in it.
        #[test]
        fn pieces_mask_as_the_whole(
            values in prop::collection::vec("[ab]{4,7}", 1..4),
            text in "[abc]{0,60}",
            cuts in prop::collection::vec(0usize..60, 0..6),
        ) {
            let secrets = Secrets::new(&values);
            let whole = secrets.mask(text.as_bytes());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let mut masker = secrets.masker();
            let (mut out, mut from) = (Vec::new(), 0);
            for cut in cuts {
                out.extend(masker.push(&text.as_bytes()[from..cut]));
                from = cut;
            }
            out.extend(masker.push(&text.as_bytes()[from..]));
            out.extend(masker.finish());
            prop_assert_eq!(&out, &whole);
            let shown = String::from_utf8(out).unwrap();
            for v in &values {
                prop_assert!(!shown.contains(v.as_str()), "{} in {}", v, shown);
            }
        }
    }
}

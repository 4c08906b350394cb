//! The tokenizer every shape model carries: SmolLM2's byte-level BPE (Apache-2.0; see
//! `assets/shape-tokenizer/README.md`), cut or padded to the shape's vocabulary size. A real
//! BPE keeps the number of tokens a prompt becomes close to what real models see (about four
//! characters a token in English), which a byte-level stand-in would not; and it is built into
//! the binary, so a shape model needs nothing downloaded. Token ids past SmolLM2's 49,152 are
//! unused padding: the embedding matrix has the shape's real size either way.

use super::gguf_writer::Value;

const SPECIALS: &str = include_str!("../../assets/shape-tokenizer/specials.txt");
const BASE: &str = include_str!("../../assets/shape-tokenizer/base.txt");
const MERGES: &str = include_str!("../../assets/shape-tokenizer/merges.txt");

/// A plain ChatML template: the special tokens it names exist in this vocabulary.
const CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// GGUF token types (llama.cpp's `llama_token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// The `tokenizer.*` metadata for a vocabulary of `vocab` tokens (at least 300).
pub fn metadata(vocab: u32) -> Vec<(&'static str, Value)> {
    let vocab = vocab as usize;
    let specials: Vec<&str> = SPECIALS.lines().collect();
    let base: Vec<&str> = BASE.lines().collect();
    let merges: Vec<&str> = MERGES.lines().collect();
    let mut tokens: Vec<String> = specials
        .iter()
        .chain(&base)
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![CONTROL; specials.len()];
    types.resize(tokens.len(), NORMAL);
    // Each merge makes the next token (SmolLM2's merges are in token order).
    let kept_merges = vocab.saturating_sub(tokens.len()).min(merges.len());
    for merge in &merges[..kept_merges] {
        tokens.push(merge.replacen(' ', "", 1));
        types.push(NORMAL);
    }
    let mut pad = 0;
    while tokens.len() < vocab {
        tokens.push(format!("<|shape_pad_{pad}|>"));
        types.push(UNUSED);
        pad += 1;
    }
    tokens.truncate(vocab);
    types.truncate(vocab);
    vec![
        ("tokenizer.ggml.model", Value::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Value::Str("smollm".into())),
        ("tokenizer.ggml.tokens", Value::Strings(tokens)),
        ("tokenizer.ggml.token_type", Value::I32s(types)),
        (
            "tokenizer.ggml.merges",
            Value::Strings(
                merges[..kept_merges]
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ("tokenizer.ggml.padding_token_id", Value::U32(2)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.chat_template", Value::Str(CHAT_TEMPLATE.into())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(meta: &[(&str, Value)]) -> Vec<String> {
        match meta.iter().find(|(k, _)| *k == "tokenizer.ggml.tokens") {
            Some((_, Value::Strings(t))) => t.clone(),
            _ => panic!("no tokens"),
        }
    }

    #[test]
    fn vocabulary_is_cut_or_padded_to_the_shape() {
        let full = tokens(&metadata(49_152));
        assert_eq!(full.len(), 49_152);
        assert_eq!(full[1], "<|im_start|>");
        assert_eq!(full[252], "Ġt");
        let small = tokens(&metadata(32_064));
        assert_eq!(small.len(), 32_064);
        let big = tokens(&metadata(151_936));
        assert_eq!(big.len(), 151_936);
        let unique: std::collections::HashSet<_> = big.iter().collect();
        assert_eq!(unique.len(), big.len(), "token texts must be unique");
    }
}

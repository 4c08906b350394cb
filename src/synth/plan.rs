//! What a shape model's file holds: every tensor llama.cpp's loader asks for in that
//! architecture (names and dimensions as in `src/models/*.cpp` of llama.cpp), each in the type
//! llama.cpp's quantizer would give it for the asked mixture (`llama_tensor_get_type` in
//! llama-quant.cpp: the output matrix in Q6_K, the "more bits" layers of `attn_v` and
//! `ffn_down` in Q4_K_M, fallbacks for rows that are not whole super-blocks…), so the file has
//! the real model's size and kernels, not just its parameter count.

use crate::catalog::Shape;

use super::blocks::BlockType;

/// A quantisation mixture `model synth --type` writes, as `llama-quantize` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mixture {
    /// The name (`Q4_K_M`).
    pub name: &'static str,
    /// llama.cpp's `llama_ftype` number (`general.file_type`).
    pub file_type: u32,
    base: BlockType,
}

/// The mixtures offered: those whose blocks [`super::blocks`] can write.
pub const MIXTURES: &[Mixture] = &[
    Mixture {
        name: "F16",
        file_type: 1,
        base: BlockType::F16,
    },
    Mixture {
        name: "Q8_0",
        file_type: 7,
        base: BlockType::Q8_0,
    },
    Mixture {
        name: "Q6_K",
        file_type: 18,
        base: BlockType::Q6K,
    },
    Mixture {
        name: "Q5_K_M",
        file_type: 17,
        base: BlockType::Q5K,
    },
    Mixture {
        name: "Q5_K_S",
        file_type: 16,
        base: BlockType::Q5K,
    },
    Mixture {
        name: "Q5_1",
        file_type: 9,
        base: BlockType::Q5_1,
    },
    Mixture {
        name: "Q5_0",
        file_type: 8,
        base: BlockType::Q5_0,
    },
    Mixture {
        name: "Q4_K_M",
        file_type: 15,
        base: BlockType::Q4K,
    },
    Mixture {
        name: "Q4_K_S",
        file_type: 14,
        base: BlockType::Q4K,
    },
    Mixture {
        name: "Q4_1",
        file_type: 3,
        base: BlockType::Q4_1,
    },
    Mixture {
        name: "Q4_0",
        file_type: 2,
        base: BlockType::Q4_0,
    },
];

/// The mixture named `name` (any case), or `None`.
pub fn mixture(name: &str) -> Option<Mixture> {
    MIXTURES
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name.trim()))
        .copied()
}

/// One tensor of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    /// GGUF name (`blk.3.attn_q.weight`).
    pub name: String,
    /// ggml dimensions, innermost (row length) first.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: BlockType,
    /// What its values are.
    pub fill: Fill,
}

/// What a tensor's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Random blocks ([`super::blocks::fill_random`]).
    Random,
    /// Every element 1.0 (RMS-norm weights).
    One,
    /// Every element 0.0 (biases).
    Zero,
}

impl TensorPlan {
    /// Elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data.
    pub fn bytes(&self) -> u64 {
        self.ty.bytes_for(self.elements())
    }
}

/// Which llama-quantize rule a matrix falls under.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Output,
    TokenEmbd,
    AttnV,
    AttnQkv,
    FfnDown,
    Other,
}

/// `use_more_bits` of llama-quant.cpp: the first and last eighth of the layers and every third
/// one between get more bits in the `_M` mixtures.
fn use_more_bits(i: u32, n: u32) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as i64 - (n / 8) as i64) % 3 == 2
}

fn matrix_type(mix: Mixture, role: Role, layer: u32, layers: u32, row_len: u64) -> BlockType {
    let base = mix.base;
    if base == BlockType::F16 {
        return BlockType::F16;
    }
    let more = use_more_bits(layer, layers);
    let ty = match (role, mix.name) {
        (Role::Output, _) if base == BlockType::Q8_0 => BlockType::Q8_0,
        (Role::Output, _) if !row_len.is_multiple_of(base.block_len()) => BlockType::Q8_0,
        (Role::Output, _) => BlockType::Q6K,
        (Role::AttnV | Role::FfnDown, "Q4_K_M" | "Q5_K_M") if more => BlockType::Q6K,
        (Role::AttnV, "Q4_K_S") if layer < 4 => BlockType::Q5K,
        (Role::FfnDown, "Q4_K_S") if layer < layers / 8 => BlockType::Q5K,
        (Role::AttnQkv, "Q4_K_M") => BlockType::Q5K,
        (Role::AttnQkv, "Q5_K_M") => BlockType::Q6K,
        _ => base,
    };
    ty.fallback_for_row(row_len)
}

/// Every tensor of `shape` written as `mix`, in loader order.
pub fn tensors(shape: &Shape, mix: Mixture) -> Vec<TensorPlan> {
    let (e, v) = (u64::from(shape.embedding), u64::from(shape.vocab));
    let (q, kv, hd) = (
        shape.q_width(),
        shape.kv_width(),
        u64::from(shape.head_size()),
    );
    let ffn = u64::from(shape.ffn);
    let arch = shape.architecture.as_str();
    let gemma = arch.starts_with("gemma");
    let mut out = Vec::new();
    let matrix = |out: &mut Vec<TensorPlan>, name: String, dims: Vec<u64>, role, layer| {
        let ty = matrix_type(mix, role, layer, shape.layers, dims[0]);
        out.push(TensorPlan {
            name,
            dims,
            ty,
            fill: Fill::Random,
        });
    };
    let vector = |out: &mut Vec<TensorPlan>, name: String, len: u64, fill| {
        out.push(TensorPlan {
            name,
            dims: vec![len],
            ty: BlockType::F32,
            fill,
        });
    };
    let tied = shape.tied_embeddings || arch == "gemma2";
    let embd_role = if tied { Role::Output } else { Role::TokenEmbd };
    matrix(
        &mut out,
        "token_embd.weight".into(),
        vec![e, v],
        embd_role,
        0,
    );
    vector(&mut out, "output_norm.weight".into(), e, Fill::One);
    if !tied {
        matrix(
            &mut out,
            "output.weight".into(),
            vec![e, v],
            Role::Output,
            0,
        );
    }
    for i in 0..shape.layers {
        let n = |t: &str| format!("blk.{i}.{t}");
        vector(&mut out, n("attn_norm.weight"), e, Fill::One);
        if arch == "phi3" {
            matrix(
                &mut out,
                n("attn_qkv.weight"),
                vec![e, q + 2 * kv],
                Role::AttnQkv,
                i,
            );
        } else {
            matrix(&mut out, n("attn_q.weight"), vec![e, q], Role::Other, i);
            matrix(&mut out, n("attn_k.weight"), vec![e, kv], Role::Other, i);
            matrix(&mut out, n("attn_v.weight"), vec![e, kv], Role::AttnV, i);
        }
        if arch == "qwen2" {
            vector(&mut out, n("attn_q.bias"), q, Fill::Zero);
            vector(&mut out, n("attn_k.bias"), kv, Fill::Zero);
            vector(&mut out, n("attn_v.bias"), kv, Fill::Zero);
        }
        if arch == "qwen3" || arch == "gemma3" {
            vector(&mut out, n("attn_q_norm.weight"), hd, Fill::One);
            vector(&mut out, n("attn_k_norm.weight"), hd, Fill::One);
        }
        matrix(
            &mut out,
            n("attn_output.weight"),
            vec![q, e],
            Role::Other,
            i,
        );
        if gemma {
            vector(&mut out, n("post_attention_norm.weight"), e, Fill::One);
        }
        vector(&mut out, n("ffn_norm.weight"), e, Fill::One);
        if arch == "phi3" {
            matrix(
                &mut out,
                n("ffn_up.weight"),
                vec![e, 2 * ffn],
                Role::Other,
                i,
            );
            matrix(
                &mut out,
                n("ffn_down.weight"),
                vec![ffn, e],
                Role::FfnDown,
                i,
            );
        } else if let Some(experts) = shape.experts {
            let x = u64::from(experts);
            out.push(TensorPlan {
                name: n("ffn_gate_inp.weight"),
                dims: vec![e, x],
                ty: BlockType::F32,
                fill: Fill::Random,
            });
            matrix(
                &mut out,
                n("ffn_gate_exps.weight"),
                vec![e, ffn, x],
                Role::Other,
                i,
            );
            matrix(
                &mut out,
                n("ffn_down_exps.weight"),
                vec![ffn, e, x],
                Role::FfnDown,
                i,
            );
            matrix(
                &mut out,
                n("ffn_up_exps.weight"),
                vec![e, ffn, x],
                Role::Other,
                i,
            );
        } else {
            matrix(&mut out, n("ffn_gate.weight"), vec![e, ffn], Role::Other, i);
            matrix(&mut out, n("ffn_up.weight"), vec![e, ffn], Role::Other, i);
            matrix(
                &mut out,
                n("ffn_down.weight"),
                vec![ffn, e],
                Role::FfnDown,
                i,
            );
        }
        if gemma {
            vector(&mut out, n("post_ffw_norm.weight"), e, Fill::One);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn shape_of(alias: &str) -> Shape {
        Catalog::builtin()
            .get(alias)
            .unwrap()
            .shape
            .clone()
            .unwrap()
    }

    fn types(plan: &[TensorPlan], suffix: &str) -> Vec<BlockType> {
        plan.iter()
            .filter(|t| t.name.ends_with(suffix))
            .map(|t| t.ty)
            .collect()
    }

    #[test]
    fn the_default_models_twin_has_its_tensors_and_types() {
        // The real file: 272 tensors, 210 Q4_1, 61 F32, token_embd Q8_0 (tied, 576 columns).
        let plan = tensors(&shape_of("smollm2-135m"), mixture("q4_1").unwrap());
        assert_eq!(plan.len(), 272);
        let count = |ty| plan.iter().filter(|t| t.ty == ty).count();
        assert_eq!(
            (
                count(BlockType::Q4_1),
                count(BlockType::F32),
                count(BlockType::Q8_0)
            ),
            (210, 61, 1)
        );
        let bytes: u64 = plan.iter().map(TensorPlan::bytes).sum();
        // 98,362,432 bytes on disk, of which a few MB are the tokenizer and header.
        assert!((96_000_000..98_362_432).contains(&bytes), "{bytes}");
    }

    #[test]
    fn q4_k_m_gives_more_bits_where_llama_quantize_does() {
        // gemma3-270m's published Q4_K_M: 18 layers, 640 columns (not whole super-blocks).
        let mut shape = shape_of("gemma-2-2b");
        shape.architecture = "gemma3".into();
        shape.layers = 18;
        shape.embedding = 640;
        shape.heads = 4;
        shape.kv_heads = 1;
        shape.ffn = 2048;
        let plan = tensors(&shape, mixture("Q4_K_M").unwrap());
        let down = types(&plan, "ffn_down.weight");
        assert_eq!(down.iter().filter(|t| **t == BlockType::Q6K).count(), 9);
        assert_eq!(down.iter().filter(|t| **t == BlockType::Q4K).count(), 9);
        let v = types(&plan, "attn_v.weight");
        assert_eq!(v.iter().filter(|t| **t == BlockType::Q8_0).count(), 9);
        assert_eq!(v.iter().filter(|t| **t == BlockType::Q5_0).count(), 9);
        assert_eq!(types(&plan, "token_embd.weight"), [BlockType::Q8_0]);
        assert_eq!(types(&plan, "attn_q_norm.weight").len(), 18);
    }

    #[test]
    fn a_7b_q4_k_m_is_the_size_of_the_published_file() {
        // Mistral-7B-Instruct-v0.3 Q4_K_M is 4,372.8 MB.
        let plan = tensors(&shape_of("mistral-7b"), mixture("Q4_K_M").unwrap());
        let mb = plan.iter().map(TensorPlan::bytes).sum::<u64>() as f64 / 1e6;
        assert!((mb / 4372.8 - 1.0).abs() < 0.02, "{mb}");
        let output = plan.iter().find(|t| t.name == "output.weight").unwrap();
        assert_eq!(output.ty, BlockType::Q6K);
    }
}

#include "models/llama.h"

#include <string>

namespace sgl::models {

Result<LlamaWeights> load_llama_weights(const model::ModelConfig& c, const WeightSource& src) {
  const int64_t n_embd = c.n_embd, n_vocab = c.n_vocab, n_ff = c.n_ff;
  const int64_t q_dim = static_cast<int64_t>(c.n_head) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  LlamaWeights w;
  SGL_ASSIGN_OR_RETURN(w.tok_embd, require_weight(src, "token_embd.weight", {n_embd, n_vocab}));
  SGL_ASSIGN_OR_RETURN(w.output_norm, require_weight(src, "output_norm.weight", {n_embd}));
  SGL_ASSIGN_OR_RETURN(w.output, optional_weight(src, "output.weight", {n_embd, n_vocab}));
  if (!w.output.present()) {
    if (!c.tied_embeddings)
      return not_found("model: tensor 'output.weight' missing and embeddings are not tied");
    w.output = w.tok_embd;
  }
  SGL_ASSIGN_OR_RETURN(w.rope_freqs, optional_weight(src, "rope_freqs.weight", {c.rope_dim / 2}));
  w.layers.resize(c.n_layer);
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaLayerWeights& l = w.layers[i];
    SGL_ASSIGN_OR_RETURN(l.attn_norm, require_weight(src, p + "attn_norm.weight", {n_embd}));
    SGL_ASSIGN_OR_RETURN(l.wq, require_weight(src, p + "attn_q.weight", {n_embd, q_dim}));
    SGL_ASSIGN_OR_RETURN(l.wk, require_weight(src, p + "attn_k.weight", {n_embd, kv_dim}));
    SGL_ASSIGN_OR_RETURN(l.wv, require_weight(src, p + "attn_v.weight", {n_embd, kv_dim}));
    if (c.attn_qkv_bias) {
      SGL_ASSIGN_OR_RETURN(l.bq, require_weight(src, p + "attn_q.bias", {q_dim}));
      SGL_ASSIGN_OR_RETURN(l.bk, require_weight(src, p + "attn_k.bias", {kv_dim}));
      SGL_ASSIGN_OR_RETURN(l.bv, require_weight(src, p + "attn_v.bias", {kv_dim}));
    }
    SGL_ASSIGN_OR_RETURN(l.wo, require_weight(src, p + "attn_output.weight", {q_dim, n_embd}));
    SGL_ASSIGN_OR_RETURN(l.ffn_norm, require_weight(src, p + "ffn_norm.weight", {n_embd}));
    SGL_ASSIGN_OR_RETURN(l.w_gate, require_weight(src, p + "ffn_gate.weight", {n_embd, n_ff}));
    SGL_ASSIGN_OR_RETURN(l.w_up, require_weight(src, p + "ffn_up.weight", {n_embd, n_ff}));
    SGL_ASSIGN_OR_RETURN(l.w_down, require_weight(src, p + "ffn_down.weight", {n_ff, n_embd}));
  }
  return w;
}

}  // namespace sgl::models

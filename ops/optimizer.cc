// Optimizer update ops: ONNX's Momentum, Adagrad and Adam
// (ai.onnx.preview.training) and PyTorch-exact SGDUpdate, AdamUpdate and
// ClipGradNorm (com.lasgd). Signatures are documented in ops/optimizer.h.
//
// Every update op is elementwise over a list of tensors, so one template
// drives them all: an op describes its variadic layout (which groups of
// tensors come in and go out), turns the run-time scalars (learning rate,
// step) into per-run coefficients, and updates a range of elements. The
// reference kernel computes in double, one tensor after another; the fast
// kernel computes float32 in float32 (as torch does) over chunks of all
// tensors in one OpenMP loop, so many small tensors still use every core.
#include "ops/optimizer.h"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace lasgd::ops {
namespace {

constexpr char kOnnxTrainingDomain[] = "ai.onnx.preview.training";
constexpr char kLasgdDomain[] = "com.lasgd";

// Elements per OpenMP work item of the fast kernels, and the total below which
// a parallel region costs more than it saves.
constexpr int64_t kChunk = 1 << 14;
constexpr int64_t kParallelThreshold = 1 << 15;

// The shortest decimal that rounds to `f` (0.999f -> 0.999): hyperparameters
// travel as float32 attributes but users wrote, and torch uses, doubles.
double DecimalOf(float f) {
  if (!std::isfinite(f)) return f;
  char buf[64];
  auto printed = std::to_chars(buf, buf + sizeof(buf), f);
  double d = f;
  std::from_chars(buf, printed.ptr, d);
  return d;
}

// A float attribute (ints are accepted too: "momentum: 0" is natural), or
// `fallback`; std::nullopt as fallback makes the attribute required.
absl::StatusOr<double> FloatAttr(const graph::Node& node, const std::string& name,
                                 std::optional<double> fallback) {
  const graph::Attribute* a = node.FindAttribute(name);
  if (a == nullptr) {
    if (fallback) return *fallback;
    return absl::InvalidArgumentError(
        absl::StrCat(node.op_type, " needs the float attribute '", name, "'"));
  }
  if (a->kind == graph::Attribute::Kind::kFloat) return DecimalOf(a->f);
  if (a->kind == graph::Attribute::Kind::kInt) return static_cast<double>(a->i);
  return absl::InvalidArgumentError(
      absl::StrCat("attribute '", name, "' must be a float; got ", a->ToString()));
}

absl::StatusOr<bool> BoolAttr(const graph::Node& node, const std::string& name) {
  const graph::Attribute* a = node.FindAttribute(name);
  if (a == nullptr) return false;
  if (a->kind != graph::Attribute::Kind::kInt || (a->i != 0 && a->i != 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attribute '", name, "' must be the int 0 or 1; got ", a->ToString()));
  }
  return a->i == 1;
}

absl::Status CheckRange(const std::string& name, double value, double lo, double hi,
                        bool hi_inclusive) {
  if (!(value >= lo) || (hi_inclusive ? value > hi : value >= hi)) {
    return absl::InvalidArgumentError(absl::StrCat("attribute ", name, " must be in [", lo, ", ",
                                                   hi, hi_inclusive ? "]" : ")", "; got ", value));
  }
  return absl::OkStatus();
}

// The variadic layout of an update node: `lead` scalar inputs, then one group
// of n tensors per name in `in_names`; outputs are one group of n per entry of
// `out_groups` (each mirroring that input group's types), then, when
// `step_output`, an optional int64 step + 1.
struct Layout {
  std::vector<std::string> lead_names;
  std::vector<std::string> in_names;
  std::vector<int> out_groups;
  bool step_output = false;
  int64_t n = 0;

  int64_t lead() const { return static_cast<int64_t>(lead_names.size()); }
  int64_t in(int64_t group, int64_t i) const { return lead() + group * n + i; }
  int64_t tensor_outputs() const { return static_cast<int64_t>(out_groups.size()) * n; }
  std::string InputName(int64_t group, int64_t i) const {
    return absl::StrCat(in_names[group], i + 1);
  }
  std::string Signature() const {
    std::vector<std::string> groups;
    for (const std::string& g : in_names) groups.push_back(g + "1.." + g + "N");
    return absl::StrCat("(", absl::StrJoin(lead_names, ", "), ", ", absl::StrJoin(groups, ", "),
                        ")");
  }
};

bool IsFloatType(DataType t) { return t == DataType::kFloat32 || t == DataType::kFloat64; }

absl::Status CheckScalarInput(InferenceContext& ctx, size_t index, const std::string& name,
                              bool integer) {
  if (!ctx.has_input(index)) return ctx.Error(absl::StrCat("input ", name, " is required"));
  DataType t = ctx.input_dtype(index);
  if (integer ? t != DataType::kInt64 : !IsFloatType(t)) {
    return ctx.Error(absl::StrCat("input ", name, " must be ",
                                  integer ? "an int64" : "a float32 or float64", " scalar; got ",
                                  DataTypeName(t)));
  }
  if (NumElements(ctx.input_shape(index)) != 1 || ctx.input_rank(index) > 1) {
    return ctx.Error(absl::StrCat("input ", name, " must be a scalar; got shape ",
                                  ShapeToString(ctx.input_shape(index))));
  }
  return absl::OkStatus();
}

// Resolves n from the input count and checks every input and the output count.
absl::Status InferLayout(InferenceContext& ctx, Layout& layout,
                         const std::vector<bool>& lead_is_integer) {
  const int64_t groups = static_cast<int64_t>(layout.in_names.size());
  const int64_t rest = static_cast<int64_t>(ctx.num_inputs()) - layout.lead();
  if (rest < groups || rest % groups != 0) {
    return ctx.Error(absl::StrCat("expects inputs ", layout.Signature(), ": ", layout.lead(), " + ",
                                  groups, "*N inputs with N >= 1; got ", ctx.num_inputs(),
                                  " inputs"));
  }
  layout.n = rest / groups;
  for (int64_t k = 0; k < layout.lead(); ++k)
    RETURN_IF_ERROR(CheckScalarInput(ctx, k, layout.lead_names[k], lead_is_integer[k]));
  for (int64_t i = 0; i < layout.n; ++i) {
    const int64_t first = layout.in(0, i);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t idx = layout.in(g, i);
      const std::string name = absl::StrCat(layout.InputName(g, i), " (input ", idx, ")");
      if (!ctx.has_input(idx)) return ctx.Error(absl::StrCat(name, " is missing"));
      if (!IsFloatType(ctx.input_dtype(idx))) {
        return ctx.Error(absl::StrCat(name, " must be float32 or float64; got ",
                                      DataTypeName(ctx.input_dtype(idx))));
      }
      if (g == 0) continue;
      if (ctx.input_dtype(idx) != ctx.input_dtype(first)) {
        return ctx.Error(absl::StrCat(name, " has dtype ", DataTypeName(ctx.input_dtype(idx)),
                                      " but ", layout.InputName(0, i), " has ",
                                      DataTypeName(ctx.input_dtype(first))));
      }
      if (ctx.input_shape(idx) != ctx.input_shape(first)) {
        return ctx.Error(absl::StrCat(name, " has shape ", ShapeToString(ctx.input_shape(idx)),
                                      " but ", layout.InputName(0, i), " has ",
                                      ShapeToString(ctx.input_shape(first))));
      }
    }
  }
  const int64_t outputs = static_cast<int64_t>(ctx.num_outputs());
  const int64_t expected = layout.tensor_outputs();
  if (outputs != expected && !(layout.step_output && outputs == expected + 1)) {
    std::vector<std::string> out_names;
    for (int g : layout.out_groups) out_names.push_back(layout.in_names[g] + "_new");
    return ctx.Error(absl::StrCat("expects ", expected, " outputs (N = ", layout.n, " each of ",
                                  absl::StrJoin(out_names, ", "), ")",
                                  layout.step_output ? " plus optionally the new step" : "",
                                  "; got ", outputs));
  }
  for (int64_t k = 0; k < static_cast<int64_t>(layout.out_groups.size()); ++k) {
    for (int64_t i = 0; i < layout.n; ++i) {
      const int64_t in = layout.in(layout.out_groups[k], i);
      ctx.set_output(k * layout.n + i, ctx.input_dtype(in), ctx.input_shape(in));
    }
  }
  if (outputs == expected + 1) ctx.set_output(expected, DataType::kInt64, {});
  return absl::OkStatus();
}

// ---- the ops: attributes, layout, coefficients and the element update ----
//
// `Range<C, T>` updates elements [b, e) of one tensor; `in` holds the input
// groups' data pointers, `out` the output groups'. C is the compute type.

// ONNX Momentum: V_new = alpha V + beta' (G + nc X); X_new = X - R V_new
// (standard) or X - R (G + nc X + alpha V_new) (nesterov); beta' = 1 at T = 0.
struct MomentumOp {
  struct Params {
    double alpha, beta, norm;
    bool nesterov;
  };
  struct Coeffs {
    double r, alpha, beta, norm;
    bool nesterov;
  };
  static constexpr double kFlopsPerElement = 7;

  static absl::StatusOr<Params> Parse(const graph::Node& node) {
    Params p;
    ASSIGN_OR_RETURN(p.alpha, FloatAttr(node, "alpha", std::nullopt));
    ASSIGN_OR_RETURN(p.beta, FloatAttr(node, "beta", std::nullopt));
    ASSIGN_OR_RETURN(p.norm, FloatAttr(node, "norm_coefficient", std::nullopt));
    const graph::Attribute* mode = node.FindAttribute("mode");
    if (mode == nullptr) return absl::InvalidArgumentError("Momentum needs the attribute 'mode'");
    if (mode->s != "standard" && mode->s != "nesterov") {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute mode must be 'standard' or 'nesterov'; got ", mode->ToString()));
    }
    p.nesterov = mode->s == "nesterov";
    return p;
  }
  static Layout MakeLayout(const Params&) { return {{"R", "T"}, {"X", "G", "V"}, {0, 2}}; }
  static Coeffs MakeCoeffs(const Params& p, double r, int64_t t) {
    return {r, p.alpha, t > 0 ? p.beta : 1.0, p.norm, p.nesterov};
  }
  template <typename C, typename T>
  static void Range(const Coeffs& k, const T* const* in, T* const* out, int64_t b, int64_t e) {
    const T *x = in[0], *g = in[1], *v = in[2];
    T *xo = out[0], *vo = out[1];
    const C r = k.r, alpha = k.alpha, beta = k.beta, nc = k.norm;
    if (k.nesterov) {
      for (int64_t j = b; j < e; ++j) {
        const C xj = x[j], gr = nc * xj + C(g[j]);
        const C vn = alpha * C(v[j]) + beta * gr;
        xo[j] = T(xj - r * (gr + alpha * vn));
        vo[j] = T(vn);
      }
    } else {
      for (int64_t j = b; j < e; ++j) {
        const C xj = x[j], gr = nc * xj + C(g[j]);
        const C vn = alpha * C(v[j]) + beta * gr;
        xo[j] = T(xj - r * vn);
        vo[j] = T(vn);
      }
    }
  }
};

// ONNX Adagrad: r = R / (1 + T decay); H_new = H + G'^2;
// X_new = X - r G' / (sqrt(H_new) + eps), G' = G + nc X.
struct AdagradOp {
  struct Params {
    double decay, eps, norm;
  };
  struct Coeffs {
    double r, eps, norm;
  };
  static constexpr double kFlopsPerElement = 8;

  static absl::StatusOr<Params> Parse(const graph::Node& node) {
    Params p;
    ASSIGN_OR_RETURN(p.decay, FloatAttr(node, "decay_factor", 0.0));
    ASSIGN_OR_RETURN(p.eps, FloatAttr(node, "epsilon", 1e-6));
    ASSIGN_OR_RETURN(p.norm, FloatAttr(node, "norm_coefficient", 0.0));
    return p;
  }
  static Layout MakeLayout(const Params&) { return {{"R", "T"}, {"X", "G", "H"}, {0, 2}}; }
  static Coeffs MakeCoeffs(const Params& p, double r, int64_t t) {
    return {r / (1.0 + static_cast<double>(t) * p.decay), p.eps, p.norm};
  }
  template <typename C, typename T>
  static void Range(const Coeffs& k, const T* const* in, T* const* out, int64_t b, int64_t e) {
    const T *x = in[0], *g = in[1], *h = in[2];
    T *xo = out[0], *ho = out[1];
    const C r = k.r, eps = k.eps, nc = k.norm;
    for (int64_t j = b; j < e; ++j) {
      const C xj = x[j], gr = nc * xj + C(g[j]);
      const C hn = C(h[j]) + gr * gr;
      xo[j] = T(xj - r * gr / (std::sqrt(hn) + eps));
      ho[j] = T(hn);
    }
  }
};

// ONNX Adam (note: bias correction on the learning rate, eps outside the
// correction, unlike torch): see the spec's pseudo code.
struct OnnxAdamOp {
  struct Params {
    double alpha, beta, eps, norm, post;
  };
  struct Coeffs {
    double r, alpha, beta, eps, norm, post;
  };
  static constexpr double kFlopsPerElement = 13;

  static absl::StatusOr<Params> Parse(const graph::Node& node) {
    Params p;
    ASSIGN_OR_RETURN(p.alpha, FloatAttr(node, "alpha", 0.9));
    ASSIGN_OR_RETURN(p.beta, FloatAttr(node, "beta", 0.999));
    ASSIGN_OR_RETURN(p.eps, FloatAttr(node, "epsilon", 1e-6));
    ASSIGN_OR_RETURN(p.norm, FloatAttr(node, "norm_coefficient", 0.0));
    ASSIGN_OR_RETURN(p.post, FloatAttr(node, "norm_coefficient_post", 0.0));
    return p;
  }
  static Layout MakeLayout(const Params&) { return {{"R", "T"}, {"X", "G", "V", "H"}, {0, 2, 3}}; }
  static Coeffs MakeCoeffs(const Params& p, double r, int64_t t) {
    double adjusted = r;
    if (t > 0) {
      const double td = static_cast<double>(t);
      adjusted = r * std::sqrt(1.0 - std::pow(p.beta, td)) / (1.0 - std::pow(p.alpha, td));
    }
    return {adjusted, p.alpha, p.beta, p.eps, p.norm, p.post};
  }
  template <typename C, typename T>
  static void Range(const Coeffs& k, const T* const* in, T* const* out, int64_t b, int64_t e) {
    const T *x = in[0], *g = in[1], *v = in[2], *h = in[3];
    T *xo = out[0], *vo = out[1], *ho = out[2];
    const C r = k.r, alpha = k.alpha, beta = k.beta, eps = k.eps, nc = k.norm;
    const C keep = C(1) - C(k.post), one_minus_alpha = 1 - k.alpha, one_minus_beta = 1 - k.beta;
    for (int64_t j = b; j < e; ++j) {
      const C xj = x[j], gr = nc * xj + C(g[j]);
      const C vn = alpha * C(v[j]) + one_minus_alpha * gr;
      const C hn = beta * C(h[j]) + one_minus_beta * gr * gr;
      xo[j] = T(keep * (xj - r * (vn / (std::sqrt(hn) + eps))));
      vo[j] = T(vn);
      ho[j] = T(hn);
    }
  }
};

// torch.optim.SGD (_single_tensor_sgd): d = ±G + wd P; B = d on the first
// step, else momentum B + (1 - dampening) d; P -= lr (nesterov ? d + momentum
// B : B), or P -= lr d without momentum.
struct SgdOp {
  struct Params {
    double momentum, dampening, weight_decay;
    bool nesterov, maximize;
  };
  struct Coeffs {
    double lr, momentum, keep, weight_decay;
    bool first, nesterov, maximize, has_momentum;
  };
  static constexpr double kFlopsPerElement = 6;

  static absl::StatusOr<Params> Parse(const graph::Node& node) {
    Params p;
    ASSIGN_OR_RETURN(p.momentum, FloatAttr(node, "momentum", 0.0));
    ASSIGN_OR_RETURN(p.dampening, FloatAttr(node, "dampening", 0.0));
    ASSIGN_OR_RETURN(p.weight_decay, FloatAttr(node, "weight_decay", 0.0));
    ASSIGN_OR_RETURN(p.nesterov, BoolAttr(node, "nesterov"));
    ASSIGN_OR_RETURN(p.maximize, BoolAttr(node, "maximize"));
    if (!(p.momentum >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute momentum must be >= 0; got ", p.momentum));
    }
    if (!(p.weight_decay >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute weight_decay must be >= 0; got ", p.weight_decay));
    }
    if (p.nesterov && (p.momentum <= 0 || p.dampening != 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("nesterov momentum requires momentum > 0 and dampening 0 (as in "
                       "torch.optim.SGD); got momentum ",
                       p.momentum, ", dampening ", p.dampening));
    }
    return p;
  }
  static Layout MakeLayout(const Params& p) {
    if (p.momentum != 0) return {{"lr", "step"}, {"P", "G", "B"}, {0, 2}, true};
    return {{"lr", "step"}, {"P", "G"}, {0}, true};
  }
  static Coeffs MakeCoeffs(const Params& p, double lr, int64_t step) {
    return {lr,        p.momentum, 1.0 - p.dampening, p.weight_decay,
            step == 0, p.nesterov, p.maximize,        p.momentum != 0};
  }
  template <typename C, typename T>
  static void Range(const Coeffs& k, const T* const* in, T* const* out, int64_t b, int64_t e) {
    const T *p = in[0], *g = in[1];
    T* po = out[0];
    const C lr = k.lr, mom = k.momentum, keep = k.keep, wd = k.weight_decay;
    const C sign = k.maximize ? -1 : 1;
    const bool decay = k.weight_decay != 0;
    if (!k.has_momentum) {
      for (int64_t j = b; j < e; ++j) {
        const C pj = p[j], d = decay ? sign * C(g[j]) + wd * pj : sign * C(g[j]);
        po[j] = T(pj - lr * d);
      }
      return;
    }
    const T* buf = in[2];
    T* bo = out[1];
    for (int64_t j = b; j < e; ++j) {
      const C pj = p[j], d = decay ? sign * C(g[j]) + wd * pj : sign * C(g[j]);
      const C bn = k.first ? d : mom * C(buf[j]) + keep * d;
      const C dir = k.nesterov ? d + mom * bn : bn;
      po[j] = T(pj - lr * dir);
      bo[j] = T(bn);
    }
  }
};

// torch.optim.Adam / AdamW (_single_tensor_adam), with t = step + 1:
// P *= 1 - lr wd (AdamW) or G += wd P (Adam); M = lerp(M, G, 1 - beta1);
// V = beta2 V + (1 - beta2) G^2; [Vmax = max(Vmax, V)];
// P -= lr / (1 - beta1^t) * M / (sqrt(V or Vmax) / sqrt(1 - beta2^t) + eps).
struct AdamOp {
  struct Params {
    double beta1, beta2, eps, weight_decay;
    bool decoupled, amsgrad, maximize;
  };
  struct Coeffs {
    double step_size, bc2_sqrt, beta1, beta2, eps, decay_mul, l2;
    bool decoupled, amsgrad, maximize;
  };
  static constexpr double kFlopsPerElement = 14;

  static absl::StatusOr<Params> Parse(const graph::Node& node) {
    Params p;
    ASSIGN_OR_RETURN(p.beta1, FloatAttr(node, "beta1", 0.9));
    ASSIGN_OR_RETURN(p.beta2, FloatAttr(node, "beta2", 0.999));
    ASSIGN_OR_RETURN(p.eps, FloatAttr(node, "eps", 1e-8));
    ASSIGN_OR_RETURN(p.weight_decay, FloatAttr(node, "weight_decay", 0.0));
    ASSIGN_OR_RETURN(p.decoupled, BoolAttr(node, "decoupled_weight_decay"));
    ASSIGN_OR_RETURN(p.amsgrad, BoolAttr(node, "amsgrad"));
    ASSIGN_OR_RETURN(p.maximize, BoolAttr(node, "maximize"));
    RETURN_IF_ERROR(CheckRange("beta1", p.beta1, 0, 1, false));
    RETURN_IF_ERROR(CheckRange("beta2", p.beta2, 0, 1, false));
    RETURN_IF_ERROR(CheckRange("eps", p.eps, 0, std::numeric_limits<double>::infinity(), true));
    RETURN_IF_ERROR(CheckRange("weight_decay", p.weight_decay, 0,
                               std::numeric_limits<double>::infinity(), true));
    return p;
  }
  static Layout MakeLayout(const Params& p) {
    if (p.amsgrad) return {{"lr", "step"}, {"P", "G", "M", "V", "Vmax"}, {0, 2, 3, 4}, true};
    return {{"lr", "step"}, {"P", "G", "M", "V"}, {0, 2, 3}, true};
  }
  static Coeffs MakeCoeffs(const Params& p, double lr, int64_t step) {
    const double t = static_cast<double>(step + 1);
    const bool decay = p.weight_decay != 0;
    return {lr / (1.0 - std::pow(p.beta1, t)),
            std::sqrt(1.0 - std::pow(p.beta2, t)),
            p.beta1,
            p.beta2,
            p.eps,
            decay && p.decoupled ? 1.0 - lr * p.weight_decay : 1.0,
            decay && !p.decoupled ? p.weight_decay : 0.0,
            decay && p.decoupled,
            p.amsgrad,
            p.maximize};
  }
  template <typename C, typename T>
  static void Range(const Coeffs& k, const T* const* in, T* const* out, int64_t b, int64_t e) {
    const T *p = in[0], *g = in[1], *m = in[2], *v = in[3];
    const T* vmax = k.amsgrad ? in[4] : nullptr;
    T *po = out[0], *mo = out[1], *vo = out[2];
    T* vmaxo = k.amsgrad ? out[3] : nullptr;
    const C step_size = k.step_size, bc2_sqrt = k.bc2_sqrt, beta2 = k.beta2, eps = k.eps;
    const C decay_mul = k.decay_mul, l2 = k.l2, sign = k.maximize ? -1 : 1;
    const C one_minus_beta2 = 1 - k.beta2;
    // torch's lerp picks its formula by the weight, for accuracy near 1.
    const double w = 1 - k.beta1;
    const bool lerp_low = w < 0.5;
    const C weight = w, one_minus_weight = 1 - w;
    for (int64_t j = b; j < e; ++j) {
      C pj = p[j];
      if (k.decoupled) pj *= decay_mul;
      C gj = sign * C(g[j]);
      if (l2 != 0) gj += l2 * C(p[j]);
      const C mj = m[j];
      const C mn = lerp_low ? mj + weight * (gj - mj) : gj - (gj - mj) * one_minus_weight;
      const C vn = C(v[j]) * beta2 + one_minus_beta2 * (gj * gj);
      C second = vn;
      if (vmaxo != nullptr) {
        second = std::max(C(vmax[j]), vn);
        vmaxo[j] = T(second);
      }
      const C denom = std::sqrt(second) / bc2_sqrt + eps;
      po[j] = T(pj - step_size * (mn / denom));
      mo[j] = T(mn);
      vo[j] = T(vn);
    }
  }
};

// ---- the update kernels ----

constexpr int kMaxGroups = 5;

template <typename Op>
class UpdateKernel : public Kernel {
 public:
  UpdateKernel(typename Op::Params params, Layout layout, bool fast)
      : params_(params), layout_(std::move(layout)), fast_(fast) {}

  absl::Status Run(KernelContext& ctx) override {
    const double lr = ctx.input(0)->GetAsDouble(0);
    const int64_t step = ctx.input(1)->data<int64_t>()[0];
    if (step < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx.node().Describe(), ": input ", layout_.lead_names[1], " must be >= 0; got ", step));
    }
    const typename Op::Coeffs coeffs = Op::MakeCoeffs(params_, lr, step);
    if (ctx.input(layout_.in(0, 0))->dtype() == DataType::kFloat64) {
      Apply<double, double>(ctx, coeffs);
    } else if (fast_) {
      Apply<float, float>(ctx, coeffs);
    } else {
      Apply<double, float>(ctx, coeffs);
    }
    const int64_t step_out = layout_.tensor_outputs();
    if (Tensor* t = ctx.output(step_out); t != nullptr && ctx.node().HasOutput(step_out)) {
      t->data<int64_t>()[0] = step + 1;
    }
    return absl::OkStatus();
  }

 private:
  template <typename C, typename T>
  void Apply(KernelContext& ctx, const typename Op::Coeffs& coeffs) {
    const int64_t n = layout_.n;
    const int64_t in_groups = static_cast<int64_t>(layout_.in_names.size());
    const int64_t out_groups = static_cast<int64_t>(layout_.out_groups.size());
    struct Pointers {
      const T* in[kMaxGroups];
      T* out[kMaxGroups];
      int64_t size;
    };
    std::vector<Pointers> tensors(n);
    // Omitted outputs still need somewhere to go.
    std::vector<std::vector<T>> scratch;
    for (int64_t i = 0; i < n; ++i) {
      Pointers& ptr = tensors[i];
      ptr.size = ctx.input(layout_.in(0, i))->num_elements();
      for (int64_t g = 0; g < in_groups; ++g) ptr.in[g] = ctx.input(layout_.in(g, i))->data<T>();
      for (int64_t k = 0; k < out_groups; ++k) {
        const int64_t o = k * n + i;
        if (ctx.node().HasOutput(o) && ctx.output(o) != nullptr) {
          ptr.out[k] = ctx.output(o)->data<T>();
        } else {
          scratch.emplace_back(ptr.size);
          ptr.out[k] = scratch.back().data();
        }
      }
    }
    if (!fast_) {
      for (const Pointers& ptr : tensors)
        Op::template Range<C, T>(coeffs, ptr.in, ptr.out, 0, ptr.size);
      return;
    }
    struct Chunk {
      int64_t tensor, begin, end;
    };
    std::vector<Chunk> chunks;
    int64_t total = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t b = 0; b < tensors[i].size; b += kChunk)
        chunks.push_back({i, b, std::min(b + kChunk, tensors[i].size)});
      total += tensors[i].size;
    }
    const int64_t num_chunks = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(static) if (total >= kParallelThreshold)
    for (int64_t c = 0; c < num_chunks; ++c) {
      const Pointers& ptr = tensors[chunks[c].tensor];
      Op::template Range<C, T>(coeffs, ptr.in, ptr.out, chunks[c].begin, chunks[c].end);
    }
  }

  typename Op::Params params_;
  Layout layout_;
  bool fast_;
};

template <typename Op>
OpSchema MakeUpdateSchema(const std::string& domain, const std::string& op_type) {
  OpSchema s;
  s.domain = domain;
  s.op_type = op_type;
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = 3;
  s.min_outputs = 1;
  // An update has an effect (its outputs are written back into state), so it
  // must run every step rather than be folded away.
  s.foldable = false;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    auto params = Op::Parse(ctx.node());
    if (!params.ok()) return ctx.Error(std::string(params.status().message()));
    Layout layout = Op::MakeLayout(*params);
    return InferLayout(ctx, layout, {false, true});
  };
  s.flops = [](const graph::Node& node, const std::vector<Shape>& in, const std::vector<Shape>&) {
    auto params = Op::Parse(node);
    if (!params.ok()) return 0.0;
    Layout layout = Op::MakeLayout(*params);
    const int64_t rest = static_cast<int64_t>(in.size()) - layout.lead();
    const int64_t n = rest / static_cast<int64_t>(layout.in_names.size());
    double elements = 0;
    for (int64_t i = 0; i < n; ++i)
      elements += static_cast<double>(NumElements(in[layout.in(0, i)]));
    return Op::kFlopsPerElement * elements;
  };
  auto build = [](bool fast) {
    return [fast](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
      ASSIGN_OR_RETURN(typename Op::Params params, Op::Parse(ctx.node));
      Layout layout = Op::MakeLayout(params);
      layout.n = (static_cast<int64_t>(ctx.input_dtypes.size()) - layout.lead()) /
                 static_cast<int64_t>(layout.in_names.size());
      if (layout.n < 1) return absl::InvalidArgumentError("no tensors to update");
      DataType dtype = ctx.input_dtypes[layout.in(0, 0)];
      if (fast && dtype != DataType::kFloat32) {
        return absl::UnimplementedError("the fast kernel is float32 only");
      }
      if (!IsFloatType(dtype)) return absl::UnimplementedError("float32/float64 only");
      return std::unique_ptr<Kernel>(new UpdateKernel<Op>(params, std::move(layout), fast));
    };
  };
  s.kernels = {{"fast", build(true)}, {"reference", build(false)}};
  return s;
}

// ---- ClipGradNorm ----

absl::StatusOr<double> ParseNormType(const graph::Node& node) {
  ASSIGN_OR_RETURN(double p, FloatAttr(node, "norm_type", 2.0));
  if (!(p > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attribute norm_type must be > 0 (or inf); got ", p));
  }
  return p;
}

absl::Status InferClipGradNorm(InferenceContext& ctx) {
  auto norm_type = ParseNormType(ctx.node());
  if (!norm_type.ok()) return ctx.Error(std::string(norm_type.status().message()));
  const int64_t n = static_cast<int64_t>(ctx.num_inputs()) - 1;
  if (n < 1) {
    return ctx.Error(absl::StrCat("expects inputs (max_norm, G1..GN) with N >= 1; got ",
                                  ctx.num_inputs(), " inputs"));
  }
  RETURN_IF_ERROR(CheckScalarInput(ctx, 0, "max_norm", false));
  for (int64_t i = 0; i < n; ++i) {
    const std::string name = absl::StrCat("G", i + 1, " (input ", i + 1, ")");
    if (!ctx.has_input(i + 1)) return ctx.Error(name + " is missing");
    if (!IsFloatType(ctx.input_dtype(i + 1))) {
      return ctx.Error(absl::StrCat(name, " must be float32 or float64; got ",
                                    DataTypeName(ctx.input_dtype(i + 1))));
    }
    if (ctx.input_dtype(i + 1) != ctx.input_dtype(1)) {
      return ctx.Error(absl::StrCat(name, " has dtype ", DataTypeName(ctx.input_dtype(i + 1)),
                                    " but G1 has ", DataTypeName(ctx.input_dtype(1))));
    }
  }
  const int64_t outputs = static_cast<int64_t>(ctx.num_outputs());
  if (outputs != n && outputs != n + 1) {
    return ctx.Error(absl::StrCat("expects ", n, " outputs (the clipped gradients) plus ",
                                  "optionally the total norm; got ", outputs));
  }
  for (int64_t i = 0; i < n; ++i) ctx.set_output(i, ctx.input_dtype(i + 1), ctx.input_shape(i + 1));
  if (outputs == n + 1) ctx.set_output(n, ctx.input_dtype(1), {});
  return absl::OkStatus();
}

// torch.nn.utils.clip_grad_norm_: the p-norm over all gradients (the norm of
// the per-tensor norms), then scale = min(1, max_norm / (norm + 1e-6)).
class ClipGradNormKernel : public Kernel {
 public:
  ClipGradNormKernel(double norm_type, bool fast) : norm_type_(norm_type), fast_(fast) {}

  absl::Status Run(KernelContext& ctx) override {
    const int64_t n = static_cast<int64_t>(ctx.num_inputs()) - 1;
    const double max_norm = ctx.input(0)->GetAsDouble(0);
    double total;
    if (fast_) {
      total = FastSquaredSum(ctx, n);
      total = std::sqrt(total);
    } else {
      total = ReferenceNorm(ctx, n);
    }
    const DataType dtype = ctx.input(1)->dtype();
    // torch keeps the norm and the coefficient in the gradients' dtype.
    if (dtype == DataType::kFloat32) total = static_cast<float>(total);
    double coef = max_norm / (total + 1e-6);
    if (dtype == DataType::kFloat32) coef = static_cast<float>(coef);
    coef = std::min(coef, 1.0);
    for (int64_t i = 0; i < n; ++i) {
      if (!ctx.node().HasOutput(i)) continue;
      const Tensor& g = *ctx.input(i + 1);
      Tensor& out = *ctx.output(i);
      const int64_t size = g.num_elements();
      if (dtype == DataType::kFloat64) {
        const double* src = g.data<double>();
        double* dst = out.data<double>();
        for (int64_t j = 0; j < size; ++j) dst[j] = src[j] * coef;
      } else {
        const float* src = g.data<float>();
        float* dst = out.data<float>();
        const float c = static_cast<float>(coef);
#pragma omp parallel for schedule(static) if (fast_ && size >= kParallelThreshold)
        for (int64_t j = 0; j < size; ++j) dst[j] = src[j] * c;
      }
    }
    if (ctx.node().HasOutput(n) && ctx.output(n) != nullptr) ctx.output(n)->SetFromDouble(0, total);
    return absl::OkStatus();
  }

 private:
  double ReferenceNorm(KernelContext& ctx, int64_t n) const {
    const bool inf = std::isinf(norm_type_);
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const Tensor& g = *ctx.input(i + 1);
      for (int64_t j = 0; j < g.num_elements(); ++j) {
        const double a = std::fabs(g.GetAsDouble(j));
        if (inf) {
          // NaN must win, as torch's max does.
          acc = std::isnan(a) || std::isnan(acc) ? std::nan("") : std::max(acc, a);
        } else {
          acc += norm_type_ == 2 ? a * a : std::pow(a, norm_type_);
        }
      }
    }
    if (inf) return acc;
    return norm_type_ == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type_);
  }

  static double FastSquaredSum(KernelContext& ctx, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* g = ctx.input(i + 1)->data<float>();
      const int64_t size = ctx.input(i + 1)->num_elements();
#pragma omp parallel for schedule(static) reduction(+ : acc) if (size >= kParallelThreshold)
      for (int64_t j = 0; j < size; ++j) acc += static_cast<double>(g[j]) * g[j];
    }
    return acc;
  }

  double norm_type_;
  bool fast_;
};

OpSchema MakeClipGradNormSchema() {
  OpSchema s;
  s.domain = kLasgdDomain;
  s.op_type = "ClipGradNorm";
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = 2;
  s.min_outputs = 1;
  s.foldable = false;
  s.infer = InferClipGradNorm;
  s.flops = [](const graph::Node&, const std::vector<Shape>& in, const std::vector<Shape>&) {
    double elements = 0;
    for (size_t i = 1; i < in.size(); ++i) elements += static_cast<double>(NumElements(in[i]));
    return 3 * elements;
  };
  auto build = [](bool fast) {
    return [fast](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
      ASSIGN_OR_RETURN(double norm_type, ParseNormType(ctx.node));
      if (ctx.input_dtypes.size() < 2 || !IsFloatType(ctx.input_dtypes[1])) {
        return absl::UnimplementedError("float32/float64 gradients only");
      }
      if (fast && (ctx.input_dtypes[1] != DataType::kFloat32 || norm_type != 2)) {
        return absl::UnimplementedError("the fast kernel takes float32 gradients and norm_type 2");
      }
      return std::unique_ptr<Kernel>(new ClipGradNormKernel(norm_type, fast));
    };
  };
  s.kernels = {{"fast", build(true)}, {"reference", build(false)}};
  return s;
}

}  // namespace

void RegisterOptimizerOps(OpRegistry& registry) {
  registry.Register(MakeUpdateSchema<MomentumOp>(kOnnxTrainingDomain, "Momentum"));
  registry.Register(MakeUpdateSchema<AdagradOp>(kOnnxTrainingDomain, "Adagrad"));
  registry.Register(MakeUpdateSchema<OnnxAdamOp>(kOnnxTrainingDomain, "Adam"));
  registry.Register(MakeUpdateSchema<SgdOp>(kLasgdDomain, "SGDUpdate"));
  registry.Register(MakeUpdateSchema<AdamOp>(kLasgdDomain, "AdamUpdate"));
  registry.Register(MakeClipGradNormSchema());
}

}  // namespace lasgd::ops

// Miscellaneous ops: Identity, Constant, Dropout and EyeLike.
//
// Dropout is not foldable: in training mode it draws a fresh mask every run
// from a generator seeded once per kernel (the `seed` attribute, else a fixed
// default), so a plan is reproducible from step to step while still dropping
// different units each step. Before opset 12 Dropout has no training_mode
// input and always runs in inference mode (a copy with an all-true mask).
#include <cstring>
#include <memory>
#include <random>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/shape_util.h"

namespace lasgd::ops {
namespace {

using shape_internal::CopyWhole;
using shape_internal::ElementBytes;
using shape_internal::ExpectDtype;
using shape_internal::ExpectStorable;
using shape_internal::MakeCandidate;
using shape_internal::NodeError;
using shape_internal::RunFn;

// ---------------------------------------------------------------------------
// Identity

void RegisterIdentity(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Identity";
  s.min_opset = 7;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext&) -> absl::StatusOr<RunFn> {
        return RunFn([](KernelContext& ctx) -> absl::Status {
          CopyWhole(*ctx.input(0), *ctx.output(0));
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Constant

// The value of a Constant node from whichever single value attribute it has.
absl::StatusOr<Tensor> ConstantValue(const graph::Node& node, int64_t opset) {
  static const char* kNames[] = {"value",     "sparse_value", "value_float",  "value_floats",
                                 "value_int", "value_ints",   "value_string", "value_strings"};
  std::vector<std::string> present;
  for (const char* n : kNames)
    if (node.FindAttribute(n) != nullptr) present.push_back(n);
  if (present.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Constant needs exactly one value attribute (value, value_float(s), value_int(s)); got ",
        present.empty() ? std::string("none") : absl::StrJoin(present, ", ")));
  }
  const std::string& name = present[0];
  const graph::Attribute& a = *node.FindAttribute(name);
  if (name == "sparse_value") {
    return absl::UnimplementedError("Constant with 'sparse_value' is not supported by lasgd");
  }
  if (name == "value_string" || name == "value_strings") {
    return absl::UnimplementedError("Constant strings are not supported by lasgd");
  }
  if (name != "value" && opset < 12) {
    return absl::InvalidArgumentError(
        absl::StrCat("attribute '", name, "' needs opset >= 12 (model uses ", opset, ")"));
  }
  if (name == "value") {
    if (a.kind != graph::Attribute::Kind::kTensor || !a.t.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute 'value' must be a tensor, got ", a.ToString()));
    }
    if (!IsSupportedDataType(a.t.dtype())) {
      return absl::UnimplementedError(
          absl::StrCat("Constant of dtype ", DataTypeName(a.t.dtype()), " is not supported"));
    }
    return a.t;
  }
  if (name == "value_float") return Tensor::FromFloats({a.f}, {});
  if (name == "value_floats") {
    return Tensor::FromFloats(a.floats, {static_cast<int64_t>(a.floats.size())});
  }
  if (name == "value_int") return Tensor::FromInt64s({a.i}, {});
  return Tensor::FromInt64s(a.ints, {static_cast<int64_t>(a.ints.size())});
}

void RegisterConstant(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Constant";
  s.min_opset = 7;
  s.min_inputs = s.max_inputs = 0;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    auto value = ConstantValue(ctx.node(), ctx.opset());
    if (!value.ok()) return NodeError(ctx, value.status());
    ctx.set_output(0, value->dtype(), value->shape());
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
        auto value = ConstantValue(b.node, b.opset);
        if (!value.ok()) return value.status();
        // Own the bytes so the kernel does not depend on the attribute's lifetime.
        auto bytes = std::make_shared<std::vector<char>>(value->data<char>(),
                                                         value->data<char>() + value->nbytes());
        return RunFn([bytes](KernelContext& ctx) -> absl::Status {
          Tensor& out = *ctx.output(0);
          if (out.nbytes() != bytes->size()) {
            return absl::InternalError(absl::StrCat(ctx.node().Describe(), ": output holds ",
                                                    out.nbytes(), " bytes but the constant has ",
                                                    bytes->size()));
          }
          if (!bytes->empty()) std::memcpy(out.raw_data(), bytes->data(), bytes->size());
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Dropout

constexpr uint64_t kDefaultDropoutSeed = 0x5eedULL;

template <typename T>
void DropoutTraining(const Tensor& in, Tensor& out, bool* mask, double ratio,
                     std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const T scale = static_cast<T>(1.0 / (1.0 - ratio));
  const T* x = in.data<T>();
  T* y = out.data<T>();
  for (int64_t i = 0; i < in.num_elements(); ++i) {
    const bool keep = uniform(rng) >= ratio;
    y[i] = keep ? x[i] * scale : T(0);
    if (mask != nullptr) mask[i] = keep;
  }
}

void RegisterDropout(OpRegistry& registry) {
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{7, 9}, {10, 11}, {12, 21}}) {
    OpSchema s;
    s.op_type = "Dropout";
    s.min_opset = lo;
    s.max_opset = hi;
    s.min_inputs = 1;
    s.max_inputs = lo >= 12 ? 3 : 1;
    s.min_outputs = 1;
    s.max_outputs = 2;
    s.foldable = false;
    if (lo >= 12) s.non_differentiable_inputs = {1, 2};
    s.infer = [](InferenceContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(ExpectDtype(
          ctx, 0, "data",
          {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16}));
      if (ctx.opset() < 12) {
        float ratio = ctx.node().GetFloat("ratio", 0.5f);
        if (!(ratio >= 0.f && ratio < 1.f)) {
          return ctx.Error(absl::StrCat("ratio ", ratio, " must be in [0, 1)"));
        }
      } else {
        if (ctx.has_input(1)) {
          RETURN_IF_ERROR(ExpectDtype(
              ctx, 1, "ratio",
              {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16}));
          if (NumElements(ctx.input_shape(1)) != 1) {
            return ctx.Error(absl::StrCat("input 1 ('ratio') must be a scalar, got shape ",
                                          ShapeToString(ctx.input_shape(1))));
          }
        }
        if (ctx.has_input(2)) {
          RETURN_IF_ERROR(ExpectDtype(ctx, 2, "training_mode", {DataType::kBool}));
          if (NumElements(ctx.input_shape(2)) != 1) {
            return ctx.Error(absl::StrCat("input 2 ('training_mode') must be a scalar, got shape ",
                                          ShapeToString(ctx.input_shape(2))));
          }
        }
      }
      ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
      if (ctx.has_output(1)) {
        // The mask had the data's type before opset 10.
        ctx.set_output(1, ctx.opset() < 10 ? ctx.input_dtype(0) : DataType::kBool,
                       ctx.input_shape(0));
      }
      return absl::OkStatus();
    };
    s.kernels.push_back(
        MakeCandidate("reference", [](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
          const int64_t opset = b.opset;
          const int64_t seed = b.node.GetInt("seed", static_cast<int64_t>(kDefaultDropoutSeed));
          auto rng = std::make_shared<std::mt19937_64>(static_cast<uint64_t>(seed));
          return RunFn([opset, rng](KernelContext& ctx) -> absl::Status {
            const Tensor& in = *ctx.input(0);
            Tensor& out = *ctx.output(0);
            Tensor* mask = ctx.output(1);
            bool training = false;
            double ratio = 0.5;
            if (opset >= 12) {
              if (const Tensor* t = ctx.input(2)) training = t->GetAsDouble(0) != 0;
              if (const Tensor* r = ctx.input(1)) ratio = r->GetAsDouble(0);
            }
            if (training && !(ratio >= 0.0 && ratio < 1.0)) {
              return absl::InvalidArgumentError(absl::StrCat(
                  ctx.node().Describe(), ": ratio ", ratio, " must be in [0, 1) in training mode"));
            }
            if (!training || ratio == 0.0) {
              CopyWhole(in, out);
              if (mask != nullptr) {
                const std::vector<char> one = ElementBytes(mask->dtype(), 1.0);
                char* m = mask->data<char>();
                for (int64_t i = 0; i < mask->num_elements(); ++i)
                  std::memcpy(m + i * one.size(), one.data(), one.size());
              }
              return absl::OkStatus();
            }
            bool* m = mask != nullptr ? mask->data<bool>() : nullptr;
            switch (in.dtype()) {
              case DataType::kFloat32:
                DropoutTraining<float>(in, out, m, ratio, *rng);
                return absl::OkStatus();
              case DataType::kFloat64:
                DropoutTraining<double>(in, out, m, ratio, *rng);
                return absl::OkStatus();
              default:
                return absl::UnimplementedError(absl::StrCat(
                    ctx.node().Describe(),
                    ": training-mode Dropout handles float32 and float64, got ", in.TypeString()));
            }
          });
        }));
    registry.Register(std::move(s));
  }
}

// ---------------------------------------------------------------------------
// EyeLike

absl::StatusOr<DataType> EyeLikeDtype(const graph::Node& node, DataType input) {
  const graph::Attribute* a = node.FindAttribute("dtype");
  if (a == nullptr) return input;
  DataType dt = static_cast<DataType>(a->i);
  if (!IsSupportedDataType(dt)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attribute dtype ", a->i, " (", DataTypeName(dt), ") is not supported"));
  }
  return dt;
}

void RegisterEyeLike(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "EyeLike";
  s.min_opset = 9;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  s.non_differentiable_inputs = {0};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    if (ctx.input_rank(0) != 2) {
      return ctx.Error(
          absl::StrCat("input 0 must be 2-D, got shape ", ShapeToString(ctx.input_shape(0))));
    }
    auto dt = EyeLikeDtype(ctx.node(), ctx.input_dtype(0));
    if (!dt.ok()) return NodeError(ctx, dt.status());
    ctx.set_output(0, *dt, ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
        const int64_t k = b.node.GetInt("k", 0);
        return RunFn([k](KernelContext& ctx) -> absl::Status {
          Tensor& out = *ctx.output(0);
          const int64_t rows = out.dim(0), cols = out.dim(1);
          const std::vector<char> one = ElementBytes(out.dtype(), 1.0);
          char* o = out.data<char>();
          std::memset(o, 0, out.nbytes());
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t j = i + k;
            if (j >= 0 && j < cols)
              std::memcpy(o + (i * cols + j) * one.size(), one.data(), one.size());
          }
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

}  // namespace

void RegisterMiscOps(OpRegistry& registry) {
  RegisterIdentity(registry);
  RegisterConstant(registry);
  RegisterDropout(registry);
  RegisterEyeLike(registry);
}

}  // namespace lasgd::ops

#include "runtime/config_parser.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"

// Library code never throws; toml++ then reports errors in its parse_result.
#define TOML_EXCEPTIONS 0
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

namespace lasgd::runtime {
namespace {

// ---- formatting values for messages and docs ----

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Written as TOML floats, so "0" reads back as a float.
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// A number in rule text ("> 0", "in [0, 1)"): integers without ".0".
std::string FormatBound(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// "string \"0.1\"", "integer 3", "a table": what a TOML value is, for "got ...".
std::string Describe(const toml::node& n) {
  if (auto* v = n.as_string()) return "string " + Quote(v->get());
  if (auto* v = n.as_integer()) return absl::StrCat("integer ", v->get());
  if (auto* v = n.as_floating_point()) return "float " + FormatDouble(v->get());
  if (auto* v = n.as_boolean()) return v->get() ? "boolean true" : "boolean false";
  if (n.is_array()) return "an array";
  if (n.is_table()) return "a table";
  return "a date/time";
}

// ---- reading one TOML value into a field ----
//
// Read returns "" or what was expected and got ("expected a float, got string
// \"0.1\""); `*where` is set to the node at fault (an array element may sit
// on a later line than its key).

template <typename T>
struct Traits;

template <>
struct Traits<std::string> {
  static std::string Name() { return "string"; }
  static std::string Read(const toml::node& n, std::string* out, const toml::node** where) {
    *where = &n;
    if (auto* v = n.as_string()) {
      *out = v->get();
      return "";
    }
    return "expected a string, got " + Describe(n);
  }
  static std::string Format(const std::string& v) { return Quote(v); }
};

template <>
struct Traits<int64_t> {
  static std::string Name() { return "integer"; }
  static std::string Read(const toml::node& n, int64_t* out, const toml::node** where) {
    *where = &n;
    if (auto* v = n.as_integer()) {
      *out = v->get();
      return "";
    }
    return "expected an integer, got " + Describe(n);
  }
  static std::string Format(int64_t v) { return absl::StrCat(v); }
};

template <>
struct Traits<uint64_t> {
  static std::string Name() { return "integer"; }
  static std::string Read(const toml::node& n, uint64_t* out, const toml::node** where) {
    *where = &n;
    auto* v = n.as_integer();
    if (v != nullptr && v->get() >= 0) {
      *out = static_cast<uint64_t>(v->get());
      return "";
    }
    return "expected a non-negative integer, got " + Describe(n);
  }
  static std::string Format(uint64_t v) { return absl::StrCat(v); }
};

template <>
struct Traits<double> {
  static std::string Name() { return "float"; }
  static std::string Read(const toml::node& n, double* out, const toml::node** where) {
    *where = &n;
    double d;
    if (auto* i = n.as_integer()) {
      d = static_cast<double>(i->get());
    } else if (auto* f = n.as_floating_point()) {
      d = f->get();
    } else {
      return "expected a float, got " + Describe(n);
    }
    if (!std::isfinite(d)) return "expected a finite float, got " + Describe(n);
    *out = d;
    return "";
  }
  static std::string Format(double v) { return FormatDouble(v); }
};

template <>
struct Traits<float> {
  static std::string Name() { return "float"; }
  static std::string Read(const toml::node& n, float* out, const toml::node** where) {
    double d;
    std::string error = Traits<double>::Read(n, &d, where);
    if (!error.empty()) return error;
    if (std::fabs(d) > std::numeric_limits<float>::max())
      return "expected a float32 value, got " + Describe(n) + " (out of range)";
    *out = static_cast<float>(d);
    return "";
  }
  static std::string Format(float v) { return FormatDouble(v); }
};

template <>
struct Traits<bool> {
  static std::string Name() { return "boolean"; }
  static std::string Read(const toml::node& n, bool* out, const toml::node** where) {
    *where = &n;
    if (auto* v = n.as_boolean()) {
      *out = v->get();
      return "";
    }
    return "expected a boolean (true or false), got " + Describe(n);
  }
  static std::string Format(bool v) { return v ? "true" : "false"; }
};

template <typename E>
struct Traits<std::vector<E>> {
  static std::string Name() { return "array of " + Traits<E>::Name() + "s"; }
  static std::string Read(const toml::node& n, std::vector<E>* out, const toml::node** where) {
    *where = &n;
    auto* array = n.as_array();
    if (array == nullptr) return "expected an " + Name() + ", got " + Describe(n);
    std::vector<E> values(array->size());
    for (size_t i = 0; i < array->size(); ++i) {
      std::string error = Traits<E>::Read(*array->get(i), &values[i], where);
      if (!error.empty())
        return absl::StrCat("expected an ", Name(), ", but element [", i, "]: ", error);
    }
    *where = &n;
    *out = std::move(values);
    return "";
  }
  static std::string Format(const std::vector<E>& v) {
    std::vector<std::string> parts;
    for (const E& e : v) parts.push_back(Traits<E>::Format(e));
    return "[" + absl::StrJoin(parts, ", ") + "]";
  }
};

// ---- rules a single value must satisfy ----

// A numeric rule, usable for any arithmetic field.
struct NumRule {
  std::string text;
  std::function<bool(double)> ok;
};

NumRule Gt(double lo) {
  return {"> " + FormatBound(lo), [lo](double v) { return v > lo; }};
}
NumRule AtLeast(double lo) {
  return {">= " + FormatBound(lo), [lo](double v) { return v >= lo; }};
}
// [lo, hi)
NumRule HalfOpen(double lo, double hi) {
  return {"in [" + FormatBound(lo) + ", " + FormatBound(hi) + ")",
          [lo, hi](double v) { return v >= lo && v < hi; }};
}
// [lo, hi]
NumRule Closed(double lo, double hi) {
  return {"in [" + FormatBound(lo) + ", " + FormatBound(hi) + "]",
          [lo, hi](double v) { return v >= lo && v <= hi; }};
}

template <typename T>
struct Rule {
  std::string text;  // "> 0", "one of sgd, adam, adamw": docs and "must be ..."
  std::function<bool(const T&)> ok;
  // Extra advice after "got X" (a nearest valid value); may be empty.
  std::function<std::string(const T&)> hint;

  Rule(std::string t, std::function<bool(const T&)> o,
       std::function<std::string(const T&)> h = nullptr)
      : text(std::move(t)), ok(std::move(o)), hint(std::move(h)) {}
  template <typename U = T, typename = std::enable_if_t<std::is_arithmetic_v<U>>>
  Rule(const NumRule& r)  // NOLINT: numeric rules convert implicitly
      : text(r.text), ok([f = r.ok](const T& v) { return f(static_cast<double>(v)); }) {}
};

// Optimal-string-alignment distance: edits, counting a swap of neighbours as one.
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// How many edits still count as a typo of a word this long.
size_t TypoBudget(const std::string& word) {
  return std::max<size_t>(1, std::min<size_t>(3, word.size() / 3));
}

// The candidate nearest to `word` within `budget` edits (default: the typo
// budget), or "".
std::string Nearest(const std::string& word, const std::vector<std::string>& candidates,
                    size_t budget = 0) {
  std::string best;
  size_t best_distance = (budget > 0 ? budget : TypoBudget(word)) + 1;
  for (const std::string& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

Rule<std::string> OneOf(std::vector<std::string> values) {
  return Rule<std::string>(
      "one of " + absl::StrJoin(values, ", "),
      [values](const std::string& v) {
        return std::find(values.begin(), values.end(), v) != values.end();
      },
      [values](const std::string& v) -> std::string {
        // Tighter than for key names: "biased" must not suggest "unbiased".
        std::string near = Nearest(v, values, std::max<size_t>(1, v.size() / 4));
        return near.empty() ? "" : "; did you mean " + Quote(near) + "?";
      });
}

constexpr char kDataForms[] = "idx:PREFIX, cifar:DIR, npz:FILE or synthetic[:OPTIONS]";

// Only the scheme and the presence of a path are checked here; the options
// are checked when the dataset opens (runtime/data/dataset.h).
bool IsDataSpec(const std::string& spec) {
  std::string scheme = spec.substr(0, spec.find(':'));
  if (scheme == "synthetic") return spec.size() == scheme.size() || spec[scheme.size()] == ':';
  if (scheme != "idx" && scheme != "cifar" && scheme != "npz") return false;
  if (spec.size() == scheme.size()) return false;
  std::string rest = spec.substr(scheme.size() + 1);
  return !rest.empty() && rest[0] != ',';
}

Rule<std::string> DataSpec(bool allow_empty) {
  return Rule<std::string>(
      allow_empty ? absl::StrCat("empty, or ", kDataForms) : std::string(kDataForms),
      [allow_empty](const std::string& v) { return (allow_empty && v.empty()) || IsDataSpec(v); });
}

Rule<std::string> NonEmpty() {
  return Rule<std::string>("non-empty", [](const std::string& v) { return !v.empty(); });
}

template <typename E>
Rule<std::vector<E>> Each(NumRule r) {
  return Rule<std::vector<E>>("each " + r.text, [f = r.ok](const std::vector<E>& v) {
    return std::all_of(v.begin(), v.end(), [&](E e) { return f(static_cast<double>(e)); });
  });
}

template <typename E>
Rule<std::vector<E>> Increasing() {
  return Rule<std::vector<E>>("strictly increasing", [](const std::vector<E>& v) {
    return std::adjacent_find(v.begin(), v.end(), std::greater_equal<E>()) == v.end();
  });
}

// ---- the key table ----

enum class PathKind {
  kNone,
  kPath,      // a file or directory
  kDataSpec,  // the path part of idx:/cifar:/npz: specs
  kResume,    // a path, or "auto"
};

enum class Shape { kString, kStringList, kOther };

struct KeyInfo {
  std::string name;  // "optimizer.lr"
  std::string section;
  std::string key;
  std::string type_name;
  std::string allowed;  // rule texts, for the docs
  std::string description;
  Shape shape = Shape::kOther;
  PathKind path_kind = PathKind::kNone;
  std::function<std::string(const toml::node&, TrainConfig&, const toml::node**)> set;
  // "" or the rest of "<key> must be > 0, got -1.0".
  std::function<std::string(TrainConfig&)> check;
  std::function<std::string(TrainConfig&)> format;
  std::function<std::string*(TrainConfig&)> string_field;  // string keys only
};

template <typename F>
using FieldType = std::remove_pointer_t<decltype(std::declval<F>()(std::declval<TrainConfig&>()))>;

template <typename F, typename T = FieldType<F>>
void Add(std::vector<KeyInfo>* keys, const std::string& name, F field, std::vector<Rule<T>> rules,
         std::string description, PathKind path_kind = PathKind::kNone) {
  KeyInfo info;
  info.name = name;
  info.section = name.substr(0, name.find('.'));
  info.key = name.substr(name.find('.') + 1);
  info.type_name = Traits<T>::Name();
  std::vector<std::string> texts;
  for (const Rule<T>& r : rules) texts.push_back(r.text);
  info.allowed = absl::StrJoin(texts, "; ");
  if (info.allowed.empty()) info.allowed = std::is_same_v<T, bool> ? "true or false" : "any";
  info.description = std::move(description);
  if constexpr (std::is_same_v<T, std::string>) {
    info.shape = Shape::kString;
    info.string_field = [field](TrainConfig& c) { return field(c); };
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    info.shape = Shape::kStringList;
  }
  info.path_kind = path_kind;
  info.set = [field](const toml::node& n, TrainConfig& c, const toml::node** where) {
    return Traits<T>::Read(n, field(c), where);
  };
  info.check = [field, rules](TrainConfig& c) -> std::string {
    const T& v = *field(c);
    for (const Rule<T>& r : rules) {
      if (r.ok(v)) continue;
      return absl::StrCat("must be ", r.text, ", got ", Traits<T>::Format(v),
                          r.hint ? r.hint(v) : "");
    }
    return "";
  };
  info.format = [field](TrainConfig& c) { return Traits<T>::Format(*field(c)); };
  keys->push_back(std::move(info));
}

#define LASGD_FIELD(member) [](TrainConfig& c) { return &c.member; }

struct SectionInfo {
  std::string name;
  std::string description;
};

const std::vector<SectionInfo>& Sections() {
  static const auto* sections = new std::vector<SectionInfo>{
      {"model", "The model to train."},
      {"data", "Training and evaluation data, batching, normalisation and augmentation."},
      {"loss", "The loss the model's output is trained against."},
      {"optimizer", "The parameter update rule."},
      {"schedule", "How the learning rate changes over the run."},
      {"train", "Run length, outputs, checkpoints and numerics."},
      {"distributed",
       "Data-parallel training over MPI (`mpirun -np N build/bin/lasgd-run train CONFIG`): the "
       "algorithm, its knobs, straggler and network emulation, and fault handling."},
  };
  return *sections;
}

std::vector<KeyInfo> BuildKeys() {
  std::vector<KeyInfo> k;
  // [model]
  Add(&k, "model.path", LASGD_FIELD(model.path), {},
      "**Required.** The exported forward ONNX model (inference graph); the trainer adds the "
      "loss, the backward pass and the optimizer.",
      PathKind::kPath);
  Add(&k, "model.input", LASGD_FIELD(model.input), {},
      "Graph input fed with the data batch; empty = the model's only input.");
  Add(&k, "model.output", LASGD_FIELD(model.output), {},
      "Output holding the logits or predictions the loss reads; empty = the first output.");
  Add(&k, "model.trainable", LASGD_FIELD(model.trainable), {},
      "Only these initializers train; empty = all of them.");
  Add(&k, "model.frozen", LASGD_FIELD(model.frozen), {},
      "Initializers that never train (e.g. a frozen backbone); must not overlap `trainable`.");
  // [data]
  Add(&k, "data.train", LASGD_FIELD(data.train), {DataSpec(false)},
      "**Required.** Training data: `idx:PREFIX` (MNIST-style IDX files), `cifar:DIR` "
      "(CIFAR-10/100 binary), `npz:FILE` (arrays `x` and `y`) or `synthetic`, each optionally "
      "followed by `,key=value` options such as `limit=N` or `split=test`.",
      PathKind::kDataSpec);
  Add(&k, "data.test", LASGD_FIELD(data.test), {DataSpec(true)},
      "Evaluation data in the same forms; empty = no evaluation.", PathKind::kDataSpec);
  Add(&k, "data.batch_size", LASGD_FIELD(data.batch_size), {AtLeast(1)},
      "Samples per batch (per micro-batch when `train.accumulate` > 1).");
  Add(&k, "data.test_batch_size", LASGD_FIELD(data.test_batch_size), {AtLeast(0)},
      "Evaluation batch size; 0 = `batch_size`.");
  Add(&k, "data.shuffle", LASGD_FIELD(data.shuffle), {}, "Reshuffle the training set every epoch.");
  Add(&k, "data.seed", LASGD_FIELD(data.seed), {AtLeast(0)},
      "Seeds shuffling, augmentation, dropout and parameter initialisation: the same seed "
      "repeats a run.");
  Add(&k, "data.drop_last", LASGD_FIELD(data.drop_last), {},
      "Drop each epoch's last, incomplete training batch.");
  Add(&k, "data.mean", LASGD_FIELD(data.mean), {},
      "Per-channel mean subtracted from inputs (which readers scale to [0, 1]); empty = no "
      "normalisation. Give `std` of the same length with it.");
  Add(&k, "data.std", LASGD_FIELD(data.std), {Each<float>(Gt(0))},
      "Per-channel standard deviation inputs are divided by, after subtracting `mean`.");
  Add(&k, "data.random_crop", LASGD_FIELD(data.random_crop), {},
      "Zero-pad training images by `crop_padding` and crop back to their size at a random "
      "offset.");
  Add(&k, "data.crop_padding", LASGD_FIELD(data.crop_padding), {AtLeast(0)},
      "Padding in pixels for `random_crop`.");
  Add(&k, "data.random_flip", LASGD_FIELD(data.random_flip), {},
      "Flip training images horizontally with probability 0.5.");
  Add(&k, "data.prefetch", LASGD_FIELD(data.prefetch), {AtLeast(0)},
      "Batches a background thread prepares ahead of the training step; 0 = no prefetching.");
  Add(&k, "data.num_classes", LASGD_FIELD(data.num_classes), {AtLeast(0)},
      "Number of classes; 0 = taken from the model's output.");
  Add(&k, "data.synthetic_samples", LASGD_FIELD(data.synthetic_samples), {AtLeast(1)},
      "Samples in a `synthetic` dataset whose spec gives no `n=`.");
  // [loss]
  Add(&k, "loss.type", LASGD_FIELD(loss.type),
      {OneOf({"cross_entropy", "mse", "bce_logits", "graph"})},
      "`cross_entropy`: softmax cross-entropy of logits against integer labels; `mse`: mean "
      "squared error against float targets; `bce_logits`: binary cross-entropy on logits; "
      "`graph`: the model computes its own loss, named by `output`.");
  Add(&k, "loss.label_smoothing", LASGD_FIELD(loss.label_smoothing), {HalfOpen(0, 1)},
      "Label smoothing, as PyTorch defines it (`cross_entropy` only).");
  Add(&k, "loss.output", LASGD_FIELD(loss.output), {},
      "The scalar loss output's name (`type = \"graph\"` only, and required there).");
  // [optimizer]
  Add(&k, "optimizer.type", LASGD_FIELD(optimizer.type), {OneOf({"sgd", "adam", "adamw"})},
      "The update rule, as PyTorch's SGD, Adam and AdamW define it.");
  Add(&k, "optimizer.lr", LASGD_FIELD(optimizer.lr), {Gt(0)},
      "Base learning rate, before the schedule and batch-size scaling.");
  Add(&k, "optimizer.momentum", LASGD_FIELD(optimizer.momentum), {HalfOpen(0, 1)},
      "Momentum (`sgd`).");
  Add(&k, "optimizer.dampening", LASGD_FIELD(optimizer.dampening), {Closed(0, 1)},
      "Dampening of the momentum buffer (`sgd`).");
  Add(&k, "optimizer.nesterov", LASGD_FIELD(optimizer.nesterov), {},
      "Nesterov momentum (`sgd`); needs `momentum` > 0 and `dampening` = 0.");
  Add(&k, "optimizer.weight_decay", LASGD_FIELD(optimizer.weight_decay), {AtLeast(0)},
      "L2 penalty added to the gradient (`sgd`, `adam`); decoupled weight decay (`adamw`).");
  Add(&k, "optimizer.beta1", LASGD_FIELD(optimizer.beta1), {HalfOpen(0, 1)},
      "First-moment decay (`adam`, `adamw`).");
  Add(&k, "optimizer.beta2", LASGD_FIELD(optimizer.beta2), {HalfOpen(0, 1)},
      "Second-moment decay (`adam`, `adamw`).");
  Add(&k, "optimizer.eps", LASGD_FIELD(optimizer.eps), {Gt(0)},
      "Denominator term (`adam`, `adamw`).");
  Add(&k, "optimizer.clip_grad_norm", LASGD_FIELD(optimizer.clip_grad_norm), {AtLeast(0)},
      "Scale gradients down so their global L2 norm is at most this; 0 = no clipping.");
  // [schedule]
  Add(&k, "schedule.type", LASGD_FIELD(schedule.type),
      {OneOf({"constant", "step", "multistep", "cosine"})},
      "`constant`; `step`: multiply lr by `gamma` every `step_size` epochs; `multistep`: "
      "multiply lr by `gamma` at each of `milestones`; `cosine`: cosine annealing from lr to "
      "`min_lr` over the run.");
  Add(&k, "schedule.warmup_steps", LASGD_FIELD(schedule.warmup_steps), {AtLeast(0)},
      "Optimizer steps of linear warm-up from 0 to the scheduled lr.");
  Add(&k, "schedule.step_size", LASGD_FIELD(schedule.step_size), {AtLeast(0)},
      "Epochs between decays (`step`; required there, >= 1).");
  Add(&k, "schedule.milestones", LASGD_FIELD(schedule.milestones),
      {Each<int64_t>(AtLeast(1)), Increasing<int64_t>()},
      "Epochs at which lr is multiplied by `gamma` (`multistep`; required there).");
  Add(&k, "schedule.gamma", LASGD_FIELD(schedule.gamma), {Gt(0)},
      "Decay factor (`step`, `multistep`).");
  Add(&k, "schedule.min_lr", LASGD_FIELD(schedule.min_lr), {AtLeast(0)},
      "Learning rate at the end of the run (`cosine`).");
  Add(&k, "schedule.base_batch_size", LASGD_FIELD(schedule.base_batch_size), {AtLeast(0)},
      "Linear scaling rule: lr is multiplied by batch size / `base_batch_size`; 0 = off.");
  // [train]
  Add(&k, "train.epochs", LASGD_FIELD(train.epochs), {AtLeast(0)},
      "Passes over the training set; >= 1 unless `steps` is set.");
  Add(&k, "train.steps", LASGD_FIELD(train.steps), {AtLeast(0)},
      "Optimizer steps to run; when > 0 it replaces `epochs`.");
  Add(&k, "train.out_dir", LASGD_FIELD(train.out_dir), {NonEmpty()},
      "Where `metrics.jsonl`, checkpoints and the export go; relative to the config file's "
      "directory, the default included.",
      PathKind::kPath);
  Add(&k, "train.export", LASGD_FIELD(train.export_path), {},
      "ONNX inference model written at the end, relative to `out_dir`; empty = none.");
  Add(&k, "train.bn_running_var", LASGD_FIELD(train.bn_running_var),
      {OneOf({"population", "unbiased"})},
      "BatchNormalization's running variance update: `population` (ONNX's training-mode "
      "definition) or `unbiased` (PyTorch's, n/(n-1)).");
  Add(&k, "train.accumulate", LASGD_FIELD(train.accumulate), {AtLeast(1)},
      "Micro-batches per optimizer step (gradient accumulation): the step uses the mean of "
      "their gradients, as PyTorch with `loss / accumulate` per micro-batch; BatchNorm "
      "statistics move on every micro-batch, the LR schedule counts optimizer steps, "
      "`data.batch_size` is the micro-batch size.");
  Add(&k, "train.program", LASGD_FIELD(train.program), {OneOf({"builtin", "training_info"})},
      "`builtin`: lasgd builds the loss, backward and optimizer from this config. "
      "`training_info`: run the model's own ONNX TrainingInfoProto as written (its "
      "initialization graph once, then per step its algorithm graph, with "
      "`ai.onnx.preview.training` Gradient nodes built by lasgd's autodiff, and its update "
      "bindings); the batch feeds the data input and the algorithm's one other input; "
      "`[loss]`, `[optimizer]` and `[schedule]` then only name `loss.output` and the "
      "evaluation metric (`loss.type`).");
  Add(&k, "train.threads", LASGD_FIELD(train.threads), {AtLeast(0)},
      "Compute threads; 0 = `OMP_NUM_THREADS`, else all cores.");
  Add(&k, "train.eval_every_epochs", LASGD_FIELD(train.eval_every_epochs), {AtLeast(1)},
      "Evaluate on `data.test` every this many epochs.");
  Add(&k, "train.checkpoint_every_epochs", LASGD_FIELD(train.checkpoint_every_epochs), {AtLeast(0)},
      "Write a checkpoint every this many epochs; 0 = never.");
  Add(&k, "train.keep_checkpoints", LASGD_FIELD(train.keep_checkpoints), {AtLeast(1)},
      "How many of the latest checkpoints are kept.");
  Add(&k, "train.resume", LASGD_FIELD(train.resume), {},
      "A checkpoint file to resume from, or `\"auto\"`: the latest checkpoint in `out_dir` if "
      "there is one.",
      PathKind::kResume);
  Add(&k, "train.on_nan", LASGD_FIELD(train.on_nan), {OneOf({"stop", "skip"})},
      "On a NaN or Inf loss or gradient: `stop` with an error naming the step and node, or "
      "`skip` the step's update and go on.");
  Add(&k, "train.progress", LASGD_FIELD(train.progress), {},
      "A progress bar on a terminal; plain lines otherwise.");
  Add(&k, "train.log_every_steps", LASGD_FIELD(train.log_every_steps), {AtLeast(1)},
      "Steps between plain progress lines when not on a terminal.");
  Add(&k, "train.curve_every_s", LASGD_FIELD(train.curve_every_s), {AtLeast(0)},
      "Rank 0 copies its model every this many seconds of training wall time; after training "
      "each copy is evaluated on `data.test` and written to `out_dir/curve.jsonl` (`wall_s`, "
      "`step`, `samples`, `test_top1`, `test_loss`): test accuracy against wall time without "
      "evaluations slowing the run. Under `lasgd` and `local` each point also evaluates the "
      "newest exact average of all ranks' models rank 0 holds (`average_top1`, "
      "`average_loss`; lasgd waits for an average in flight to get it). 0 = off.");
  // [distributed]
  Add(&k, "distributed.algorithm", LASGD_FIELD(distributed.algorithm),
      {OneOf({"none", "lasgd", "sync", "local", "sgp"})},
      "`none`: every rank trains alone (one process: plain training); `lasgd`: local SGD whose "
      "exact model averages run in the background while the next segment computes; `sync`: "
      "gradient All-Reduce every step in buckets overlapped with backward (DDP/Horovod); "
      "`local`: blocking model average every `segment_steps`; `sgp`: push-sum gossip with one "
      "peer per step over a time-varying exponential graph.");
  Add(&k, "distributed.segment_steps", LASGD_FIELD(distributed.segment_steps), {AtLeast(1)},
      "Local optimizer steps between model averages (`lasgd`, `local`).");
  Add(&k, "distributed.segment_ms", LASGD_FIELD(distributed.segment_ms), {AtLeast(0)},
      "Segments measured in wall time (`lasgd`): average number k starts at each rank's first "
      "step boundary after k x `segment_ms`, so a slow rank takes fewer local steps instead of "
      "holding the others back; 0 = count `segment_steps`.");
  Add(&k, "distributed.average_buffers", LASGD_FIELD(distributed.average_buffers), {},
      "Average BatchNormalization running statistics with the weights.");
  Add(&k, "distributed.average_optimizer_state", LASGD_FIELD(distributed.average_optimizer_state),
      {},
      "Average the optimizer's float32 state (SGD momentum, Adam moments) with the weights, by "
      "the same rule (`lasgd`, `local`): ranks then restart each segment from one momentum "
      "instead of each carrying its own ranks' gradient noise into the next one. Doubles the "
      "floats each average sends with SGD momentum (triples with Adam).");
  Add(&k, "distributed.warmup_steps", LASGD_FIELD(distributed.warmup_steps), {AtLeast(0)},
      "Synchronous gradient All-Reduce for the first this many steps, then local steps "
      "(post-local SGD) (`lasgd`, `local`).");
  Add(&k, "distributed.apply", LASGD_FIELD(distributed.apply), {OneOf({"boundary", "when_ready"})},
      "When a finished average is merged (`lasgd`): at the next segment `boundary`, or at the "
      "first step after it completes (`when_ready`; with `segment_ms` a boundary that comes "
      "while the previous average is in flight then moves to the step after it completes "
      "instead of waiting).");
  Add(&k, "distributed.bucket_mb", LASGD_FIELD(distributed.bucket_mb), {Gt(0)},
      "Gradient bucket size in MB (`sync`): each bucket's All-Reduce starts as soon as its "
      "gradients are ready.");
  Add(&k, "distributed.timeout_s", LASGD_FIELD(distributed.timeout_s), {Gt(0)},
      "A collective that does not complete within this many seconds is an error naming the "
      "ranks that stopped answering; every rank then exits non-zero.");
  Add(&k, "distributed.slow_rank", LASGD_FIELD(distributed.slow_rank), {AtLeast(-1)},
      "Straggler emulation: this rank computes `slow_factor` times slower; -1 = none.");
  Add(&k, "distributed.slow_factor", LASGD_FIELD(distributed.slow_factor), {AtLeast(1)},
      "How many times longer the slow rank's steps take.");
  Add(&k, "distributed.jitter_ms", LASGD_FIELD(distributed.jitter_ms), {AtLeast(0)},
      "Random extra delay after every step on every rank, exponentially distributed with this "
      "mean in milliseconds; 0 = none.");
  Add(&k, "distributed.latency_ms", LASGD_FIELD(distributed.latency_ms), {AtLeast(0)},
      "Network emulation: extra delay per message, in milliseconds.");
  Add(&k, "distributed.bandwidth_mb_s", LASGD_FIELD(distributed.bandwidth_mb_s), {AtLeast(0)},
      "Network emulation: each message takes at least its size divided by this many MB/s; "
      "0 = unlimited.");
  Add(&k, "distributed.fault", LASGD_FIELD(distributed.fault), {OneOf({"none", "kill", "hang"})},
      "Fault injection for tests: `kill` (SIGKILL) or `hang` (SIGSTOP) rank `fault_rank` at "
      "step `fault_step`.");
  Add(&k, "distributed.fault_rank", LASGD_FIELD(distributed.fault_rank), {AtLeast(-1)},
      "The rank `fault` strikes.");
  Add(&k, "distributed.fault_step", LASGD_FIELD(distributed.fault_step), {AtLeast(0)},
      "The step at which `fault` strikes.");
  return k;
}

#undef LASGD_FIELD

const std::vector<KeyInfo>& Keys() {
  static const auto* keys = new std::vector<KeyInfo>(BuildKeys());
  return *keys;
}

const KeyInfo* FindKey(const std::string& name) {
  for (const KeyInfo& k : Keys())
    if (k.name == name) return &k;
  return nullptr;
}

bool IsSection(const std::string& name) {
  for (const SectionInfo& s : Sections())
    if (s.name == name) return true;
  return false;
}

std::string SectionList() {
  std::vector<std::string> names;
  for (const SectionInfo& s : Sections()) names.push_back("[" + s.name + "]");
  return absl::StrJoin(names, ", ");
}

// ---- unknown names ----

// The known key an unknown "section.key" (section empty: outside any
// section) most likely meant, or "".
std::string SuggestKey(const std::string& section, const std::string& key) {
  std::vector<std::string> full_names;
  for (const KeyInfo& k : Keys()) full_names.push_back(k.name);
  // A typo anywhere in the name.
  if (!section.empty()) {
    std::string typed = section + "." + key;
    size_t budget = TypoBudget(key);
    std::string best;
    size_t best_distance = budget + 1;
    for (const std::string& c : full_names) {
      size_t d = EditDistance(typed, c);
      if (d < best_distance) {
        best = c;
        best_distance = d;
      }
    }
    if (!best.empty()) return best;
  }
  // The right key in the wrong section.
  for (const KeyInfo& k : Keys())
    if (k.key == key) return k.name;
  // A typo of a key in another section.
  std::vector<std::string> bare;
  for (const KeyInfo& k : Keys()) bare.push_back(k.key);
  std::string near = Nearest(key, bare);
  for (const KeyInfo& k : Keys())
    if (!near.empty() && k.key == near) return k.name;
  return "";
}

std::string UnknownKeyMessage(const std::string& section, const std::string& key) {
  std::string suggestion = SuggestKey(section, key);
  std::string head = section.empty() ? "key '" + key + "' is outside any section"
                                     : "unknown key '" + section + "." + key + "'";
  if (!suggestion.empty()) return head + "; did you mean '" + suggestion + "'?";
  if (section.empty()) return head + "; sections are " + SectionList();
  std::vector<std::string> keys;
  for (const KeyInfo& k : Keys())
    if (k.section == section) keys.push_back(k.key);
  return head + "; [" + section + "] keys are " + absl::StrJoin(keys, ", ");
}

std::string UnknownSectionMessage(const std::string& section) {
  std::vector<std::string> names;
  for (const SectionInfo& s : Sections()) names.push_back(s.name);
  std::string near = Nearest(section, names);
  if (near.empty()) {
    // "[training]" for "[train]": a longer or shorter form of a known name.
    for (const std::string& n : names)
      if (section.rfind(n, 0) == 0 || n.rfind(section, 0) == 0) near = n;
  }
  std::string head = "unknown section [" + section + "]";
  if (!near.empty()) return head + "; did you mean [" + near + "]?";
  return head + "; sections are " + SectionList();
}

// ---- parsing ----

// Where each key got its value: "config.toml:7" or "--set optimizer.lr=0.1".
using Origins = std::map<std::string, std::string>;

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(where + ": " + what);
}

std::string Line(const std::string& source, const toml::source_region& region) {
  return absl::StrCat(source, ":", region.begin.line);
}

absl::Status ApplyTable(const toml::table& root, const std::string& source, TrainConfig* config,
                        Origins* origins) {
  // Handled in file order, so the first problem reported is the first in the file.
  struct Item {
    uint32_t line;
    std::string error;  // or, when empty, an assignment:
    const KeyInfo* info = nullptr;
    const toml::node* value = nullptr;
  };
  std::vector<Item> items;
  for (auto&& [name, node] : root) {
    std::string section(name.str());
    uint32_t line = name.source().begin.line;
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      items.push_back({line, IsSection(section) ? "'" + section + "' must be a section ([" +
                                                      section + "]), got " + Describe(node)
                                                : UnknownKeyMessage("", section)});
      continue;
    }
    if (!IsSection(section)) {
      items.push_back({line, UnknownSectionMessage(section)});
      continue;
    }
    for (auto&& [key_name, value] : *table) {
      std::string key(key_name.str());
      uint32_t key_line = key_name.source().begin.line;
      const KeyInfo* info = FindKey(section + "." + key);
      if (info == nullptr) {
        items.push_back({key_line, UnknownKeyMessage(section, key)});
      } else {
        items.push_back({key_line, "", info, &value});
      }
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.line < b.line; });
  for (const Item& item : items) {
    std::string where = absl::StrCat(source, ":", item.line);
    if (!item.error.empty()) return Invalid(where, item.error);
    const toml::node* at = item.value;
    std::string error = item.info->set(*item.value, *config, &at);
    if (!error.empty()) return Invalid(Line(source, at->source()), item.info->name + ": " + error);
    (*origins)[item.info->name] = where;
  }
  return absl::OkStatus();
}

absl::Status ApplyOverride(const std::string& text, TrainConfig* config, Origins* origins) {
  std::string where = "--set " + text;
  size_t eq = text.find('=');
  if (eq == std::string::npos) return Invalid(where, "expected section.key=value");
  std::string name(absl::StripAsciiWhitespace(text.substr(0, eq)));
  std::string value = text.substr(eq + 1);
  const KeyInfo* info = FindKey(name);
  if (info == nullptr) {
    size_t dot = name.find('.');
    std::string section = dot == std::string::npos ? "" : name.substr(0, dot);
    std::string key = dot == std::string::npos ? name : name.substr(dot + 1);
    if (!section.empty() && !IsSection(section))
      return Invalid(where, UnknownSectionMessage(section));
    return Invalid(where, UnknownKeyMessage(section, key));
  }

  // TOML value syntax first; the raw text where that fails or where a string
  // is wanted, so paths and names need no quotes on a command line.
  toml::parse_result parsed;
  const toml::node* node = nullptr;
  if (value.find_first_of("\r\n") == std::string::npos) {
    parsed = toml::parse("v = " + value + "\n", std::string_view("--set"));
    if (parsed && parsed.table().size() == 1) node = parsed.table().get("v");
  }
  toml::value<std::string> raw_string(value);
  toml::array raw_list;
  if (info->shape == Shape::kString && (node == nullptr || !node->is_string())) {
    node = &raw_string;
  } else if (info->shape == Shape::kStringList && (node == nullptr || !node->is_array())) {
    if (!absl::StripAsciiWhitespace(value).empty()) {
      for (absl::string_view part : absl::StrSplit(value, ','))
        raw_list.push_back(std::string(absl::StripAsciiWhitespace(part)));
    }
    node = &raw_list;
  } else if (node == nullptr) {
    node = &raw_string;
  }
  const toml::node* at = node;
  std::string error = info->set(*node, *config, &at);
  if (!error.empty()) return Invalid(where, name + ": " + error);
  (*origins)[name] = where;
  return absl::OkStatus();
}

absl::Status Validate(TrainConfig& c, const std::string& source, const Origins& origins) {
  auto at = [&](const std::string& name) {
    auto it = origins.find(name);
    return it == origins.end() ? source : it->second;
  };
  if (c.model.path.empty())
    return Invalid(at("model.path"),
                   "[model] path is required: the exported forward ONNX model to train");
  if (c.data.train.empty())
    return Invalid(at("data.train"),
                   absl::StrCat("[data] train is required: the training data, as ", kDataForms));

  for (const KeyInfo& k : Keys()) {
    std::string error = k.check(c);
    if (!error.empty()) return Invalid(at(k.name), k.name + " " + error);
  }

  // Rules that involve several keys.
  for (const std::string& name : c.model.trainable) {
    if (std::find(c.model.frozen.begin(), c.model.frozen.end(), name) != c.model.frozen.end())
      return Invalid(at("model.frozen"),
                     "model.frozen and model.trainable both name " + Quote(name));
  }
  const auto& mean = c.data.mean;
  const auto& stddev = c.data.std;
  if (mean.empty() != stddev.empty())
    return Invalid(at(mean.empty() ? "data.std" : "data.mean"),
                   "data.mean and data.std go together (one value per channel each); only " +
                       std::string(mean.empty() ? "std" : "mean") + " is given");
  if (mean.size() != stddev.size())
    return Invalid(at("data.std"), absl::StrCat("data.mean has ", mean.size(),
                                                " values but data.std has ", stddev.size()));
  if (c.loss.type == "graph" && c.loss.output.empty())
    return Invalid(at("loss.type"),
                   "loss.type = \"graph\" needs loss.output: the name of the model's loss output");
  if (c.loss.type != "graph" && !c.loss.output.empty())
    return Invalid(at("loss.output"), "loss.output applies only with loss.type = \"graph\"; got " +
                                          Quote(c.loss.type));
  if (c.loss.label_smoothing != 0 && c.loss.type != "cross_entropy")
    return Invalid(at("loss.label_smoothing"),
                   "loss.label_smoothing applies only with loss.type = \"cross_entropy\"; got " +
                       Quote(c.loss.type));
  if (c.optimizer.type == "sgd" && c.optimizer.nesterov &&
      (c.optimizer.momentum <= 0 || c.optimizer.dampening != 0))
    return Invalid(at("optimizer.nesterov"),
                   "optimizer.nesterov needs optimizer.momentum > 0 and optimizer.dampening = 0; "
                   "got momentum " +
                       FormatDouble(c.optimizer.momentum) + ", dampening " +
                       FormatDouble(c.optimizer.dampening));
  if (c.schedule.type == "step" && c.schedule.step_size < 1)
    return Invalid(at("schedule.step_size"),
                   absl::StrCat("schedule.type = \"step\" needs schedule.step_size >= 1, got ",
                                c.schedule.step_size));
  if (c.schedule.type == "multistep" && c.schedule.milestones.empty())
    return Invalid(at("schedule.milestones"),
                   "schedule.type = \"multistep\" needs schedule.milestones, e.g. [30, 60, 90]");
  const DistributedConfig& d = c.distributed;
  if (d.fault != "none" && d.fault_rank < 0)
    return Invalid(at("distributed.fault_rank"),
                   "distributed.fault = " + Quote(d.fault) + " needs distributed.fault_rank >= 0");
  if (d.warmup_steps > 0 && d.algorithm != "lasgd" && d.algorithm != "local")
    return Invalid(at("distributed.warmup_steps"),
                   "distributed.warmup_steps applies only with distributed.algorithm = \"lasgd\" "
                   "or \"local\"; got " +
                       Quote(d.algorithm));
  if (d.segment_ms > 0 && d.algorithm != "lasgd")
    return Invalid(at("distributed.segment_ms"),
                   "distributed.segment_ms applies only with distributed.algorithm = \"lasgd\"; "
                   "got " +
                       Quote(d.algorithm));
  if (c.train.epochs < 1 && c.train.steps <= 0)
    return Invalid(
        at("train.epochs"),
        absl::StrCat("train.epochs must be >= 1 unless train.steps is set, got ", c.train.epochs));
  return absl::OkStatus();
}

std::string Resolve(const std::filesystem::path& base, const std::string& path) {
  if (base.empty() || path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (base / path).lexically_normal().string();
}

// Paths written in the file (or defaulted) are relative to the file's
// directory; paths from --set keep the working directory's meaning.
void ResolvePaths(TrainConfig* c, const std::string& source, const Origins& origins) {
  std::filesystem::path base = std::filesystem::path(source).parent_path();
  for (const KeyInfo& k : Keys()) {
    if (k.path_kind == PathKind::kNone || !k.string_field) continue;
    auto it = origins.find(k.name);
    if (it != origins.end() && it->second.rfind("--set ", 0) == 0) continue;
    std::string& value = *k.string_field(*c);
    switch (k.path_kind) {
      case PathKind::kPath:
        value = Resolve(base, value);
        break;
      case PathKind::kResume:
        if (value != "auto") value = Resolve(base, value);
        break;
      case PathKind::kDataSpec: {
        size_t colon = value.find(':');
        std::string scheme = value.substr(0, colon);
        if (colon == std::string::npos || scheme == "synthetic") break;
        size_t comma = value.find(',', colon + 1);
        std::string path = value.substr(
            colon + 1, comma == std::string::npos ? std::string::npos : comma - colon - 1);
        std::string rest = comma == std::string::npos ? "" : value.substr(comma);
        value = scheme + ":" + Resolve(base, path) + rest;
        break;
      }
      case PathKind::kNone:
        break;
    }
  }
}

constexpr char kExampleConfig[] = R"(# A CIFAR-10 ResNet run; paths are relative to this file.
[model]
path = "resnet20.onnx"

[data]
train = "cifar:cifar-10-batches-bin"
test = "cifar:cifar-10-batches-bin,split=test"
batch_size = 128
mean = [0.4914, 0.4822, 0.4465]
std = [0.2470, 0.2435, 0.2616]
random_crop = true
random_flip = true

[optimizer]
type = "sgd"
lr = 0.1
momentum = 0.9
nesterov = true
weight_decay = 5e-4

[schedule]
type = "multistep"
milestones = [100, 150]

[train]
epochs = 200
out_dir = "runs/resnet20"
export = "resnet20-trained.onnx"
)";

}  // namespace

absl::StatusOr<TrainConfig> ParseTrainConfig(const std::string& toml_text,
                                             const std::string& source_name,
                                             const std::vector<std::string>& overrides) {
  TrainConfig config;
  config.config_path = source_name;
  toml::parse_result parsed = toml::parse(toml_text, std::string_view(source_name));
  if (!parsed) {
    const toml::parse_error& error = parsed.error();
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ":", error.source().begin.line, ":", error.source().begin.column,
                     ": TOML syntax error: ", std::string(error.description())));
  }
  Origins origins;
  RETURN_IF_ERROR(ApplyTable(parsed.table(), source_name, &config, &origins));
  for (const std::string& o : overrides) RETURN_IF_ERROR(ApplyOverride(o, &config, &origins));
  RETURN_IF_ERROR(Validate(config, source_name, origins));
  ResolvePaths(&config, source_name, origins);
  return config;
}

absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path,
                                            const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return absl::NotFoundError(
        absl::StrCat("cannot read config file '", path, "': ", std::strerror(err)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading config file '", path, "'"));
  return ParseTrainConfig(text.str(), path, overrides);
}

std::vector<std::string> ConfigKeyNames() {
  std::vector<std::string> names;
  for (const KeyInfo& k : Keys()) names.push_back(k.name);
  return names;
}

std::string ConfigReferenceMarkdown() {
  std::string md;
  absl::StrAppend(
      &md,
      "<!-- Generated by lasgd::runtime::ConfigReferenceMarkdown() (runtime/config_parser.cc); "
      "edit the key table there, then run\n"
      "     LASGD_UPDATE_DOCS=1 build/bin/config_parser_test to rewrite this file. -->\n\n",
      "## Training configuration\n\n",
      "`lasgd-run train CONFIG.toml [--set section.key=value ...]` reads a ",
      "[TOML](https://toml.io) file with the sections below. Only `[model] path` and ",
      "`[data] train` are required; every other key has the default shown.\n\n",
      "- **Strict keys.** A key or section not listed here is an error, and the message ",
      "suggests the nearest known name: `config.toml:7: unknown key 'optimizer.momentun'; ",
      "did you mean 'optimizer.momentum'?`.\n",
      "- **Strict types.** A string where a number is expected is an error; an integer is ",
      "accepted where a float is expected. Values out of range (for instance `lr <= 0`, ",
      "`momentum` outside [0, 1), an unknown `type`) are errors that name the file, the line, ",
      "the key and what is allowed.\n",
      "- **Relative paths** written in the file (`model.path`, the path in `idx:`, `cifar:` and ",
      "`npz:` data specs, `train.out_dir` (its default `out` too) and `train.resume`) are ",
      "relative to the directory holding the config file, not to the working directory. ",
      "`train.export` is relative to `out_dir`.\n",
      "- **Overrides.** `--set section.key=value` (repeatable, applied in order after the ",
      "file) replaces one key. The value is TOML value syntax (`--set optimizer.lr=3e-4`, ",
      "`--set data.mean=[0.5]`, `--set data.shuffle=false`); text that is not a TOML value, ",
      "or any value given to a string key, is taken as a plain string, so ",
      "`--set model.path=net.onnx` needs no quotes. Keys holding a list of strings also take ",
      "comma-separated text: `--set model.frozen=fc.weight,fc.bias`. Paths given with `--set` ",
      "are relative to the working directory.\n\n", "Example:\n\n```toml\n", kExampleConfig,
      "```\n");
  TrainConfig defaults;
  for (const SectionInfo& section : Sections()) {
    absl::StrAppend(&md, "\n### [", section.name, "]\n\n", section.description, "\n\n",
                    "| Key | Type | Default | Allowed | Meaning |\n",
                    "| --- | --- | --- | --- | --- |\n");
    for (const KeyInfo& k : Keys()) {
      if (k.section != section.name) continue;
      absl::StrAppend(&md, "| `", k.key, "` | ", k.type_name, " | `", k.format(defaults), "` | ",
                      k.allowed, " | ", k.description, " |\n");
    }
  }
  return md;
}

}  // namespace lasgd::runtime

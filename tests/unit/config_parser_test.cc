// The training-config parser: every key reads into its TrainConfig field,
// each kind of mistake gives a message naming file, line, key and what was
// expected, overrides and relative paths behave as documented, and
// docs/config.md is exactly what the key table generates.
#include "runtime/config_parser.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "gtest/gtest.h"

namespace lasgd::runtime {
namespace {

// Substring check that shows the whole message on failure (no gmock here).
::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// The smallest valid config; tests append sections or override keys.
constexpr char kMinimal[] = R"([model]
path = "/models/net.onnx"
[data]
train = "synthetic"
)";

absl::StatusOr<TrainConfig> Parse(const std::string& text,
                                  const std::vector<std::string>& overrides = {}) {
  return ParseTrainConfig(text, "config.toml", overrides);
}

// The error message of a config that must fail.
std::string ErrorOf(const std::string& text, const std::vector<std::string>& overrides = {}) {
  auto config = Parse(text, overrides);
  if (config.ok()) return "<parsed OK>";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(ConfigParser, FullConfigSetsEveryField) {
  // Line numbers matter to no assertion here; every value differs from its default.
  const std::string text = R"(
[model]
path = "/m/net.onnx"
input = "image"
output = "logits"
trainable = ["fc.weight", "fc.bias"]
frozen = ["conv1.weight"]

[data]
train = "idx:/d/train,limit=100"
test = "npz:/d/test.npz"
batch_size = 32
test_batch_size = 256
shuffle = false
seed = 7
drop_last = false
mean = [0.5, 0.25, 0.125]
std = [0.2, 0.3, 0.4]
random_crop = true
crop_padding = 2
random_flip = true
prefetch = 0
num_classes = 10
synthetic_samples = 100

[loss]
type = "cross_entropy"
label_smoothing = 0.1

[optimizer]
type = "sgd"
lr = 0.5
momentum = 0.9
dampening = 0.0
nesterov = true
weight_decay = 5e-4
beta1 = 0.8
beta2 = 0.99
eps = 1e-6
clip_grad_norm = 5

[schedule]
type = "multistep"
warmup_steps = 100
step_size = 3
milestones = [10, 20]
gamma = 0.2
min_lr = 1e-5
base_batch_size = 256

[train]
epochs = 12
steps = 1000
out_dir = "/runs/a"
export = "final.onnx"
bn_running_var = "unbiased"
accumulate = 4
threads = 2
eval_every_epochs = 3
checkpoint_every_epochs = 0
keep_checkpoints = 1
resume = "auto"
on_nan = "skip"
progress = false
log_every_steps = 10
)";
  auto parsed = ParseTrainConfig(text, "/etc/cfg/config.toml", {});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const TrainConfig& c = *parsed;
  EXPECT_EQ(c.config_path, "/etc/cfg/config.toml");
  EXPECT_EQ(c.model.path, "/m/net.onnx");
  EXPECT_EQ(c.model.input, "image");
  EXPECT_EQ(c.model.output, "logits");
  EXPECT_EQ(c.model.trainable, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_EQ(c.model.frozen, (std::vector<std::string>{"conv1.weight"}));
  EXPECT_EQ(c.data.train, "idx:/d/train,limit=100");
  EXPECT_EQ(c.data.test, "npz:/d/test.npz");
  EXPECT_EQ(c.data.batch_size, 32);
  EXPECT_EQ(c.data.test_batch_size, 256);
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_EQ(c.data.seed, 7u);
  EXPECT_FALSE(c.data.drop_last);
  EXPECT_EQ(c.data.mean, (std::vector<float>{0.5f, 0.25f, 0.125f}));
  EXPECT_EQ(c.data.std, (std::vector<float>{0.2f, 0.3f, 0.4f}));
  EXPECT_TRUE(c.data.random_crop);
  EXPECT_EQ(c.data.crop_padding, 2);
  EXPECT_TRUE(c.data.random_flip);
  EXPECT_EQ(c.data.prefetch, 0);
  EXPECT_EQ(c.data.num_classes, 10);
  EXPECT_EQ(c.data.synthetic_samples, 100);
  EXPECT_EQ(c.loss.type, "cross_entropy");
  EXPECT_FLOAT_EQ(c.loss.label_smoothing, 0.1f);
  EXPECT_EQ(c.optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.5);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.optimizer.dampening, 0.0);
  EXPECT_TRUE(c.optimizer.nesterov);
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 5e-4);
  EXPECT_DOUBLE_EQ(c.optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(c.optimizer.beta2, 0.99);
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.optimizer.clip_grad_norm, 5.0);  // an integer where a float is expected
  EXPECT_EQ(c.schedule.type, "multistep");
  EXPECT_EQ(c.schedule.warmup_steps, 100);
  EXPECT_EQ(c.schedule.step_size, 3);
  EXPECT_EQ(c.schedule.milestones, (std::vector<int64_t>{10, 20}));
  EXPECT_DOUBLE_EQ(c.schedule.gamma, 0.2);
  EXPECT_DOUBLE_EQ(c.schedule.min_lr, 1e-5);
  EXPECT_EQ(c.schedule.base_batch_size, 256);
  EXPECT_EQ(c.train.epochs, 12);
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.out_dir, "/runs/a");
  EXPECT_EQ(c.train.export_path, "final.onnx");  // relative to out_dir: left alone
  EXPECT_EQ(c.train.bn_running_var, "unbiased");
  EXPECT_EQ(c.train.accumulate, 4);
  EXPECT_EQ(c.train.threads, 2);
  EXPECT_EQ(c.train.eval_every_epochs, 3);
  EXPECT_EQ(c.train.checkpoint_every_epochs, 0);
  EXPECT_EQ(c.train.keep_checkpoints, 1);
  EXPECT_EQ(c.train.resume, "auto");
  EXPECT_EQ(c.train.on_nan, "skip");
  EXPECT_FALSE(c.train.progress);
  EXPECT_EQ(c.train.log_every_steps, 10);
}

TEST(ConfigParser, MinimalConfigKeepsDefaults) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status();
  TrainConfig defaults;
  EXPECT_EQ(c->data.batch_size, defaults.data.batch_size);
  EXPECT_EQ(c->optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(c->optimizer.lr, defaults.optimizer.lr);
  EXPECT_EQ(c->schedule.type, "constant");
  EXPECT_EQ(c->train.on_nan, "stop");
  EXPECT_EQ(c->train.bn_running_var, "population");
  EXPECT_EQ(c->train.out_dir, "out");  // config.toml has no directory part
}

// Each key of the table is accepted under its section: a wrong-typed value
// (an inline table suits no key) is reported as that key's type error, not
// as an unknown key.
TEST(ConfigParser, EveryKeyIsKnownInItsSection) {
  std::vector<std::string> names = ConfigKeyNames();
  ASSERT_GE(names.size(), 50u);
  for (const std::string& name : names) {
    size_t dot = name.find('.');
    std::string text = "[" + name.substr(0, dot) + "]\n" + name.substr(dot + 1) + " = {}\n";
    EXPECT_EQ(ErrorOf(text).rfind("config.toml:2: " + name + ": expected ", 0), 0u)
        << name << ": " << ErrorOf(text);
  }
}

TEST(ConfigParser, SyntaxErrorNamesLineAndColumn) {
  std::string error = ErrorOf("[model]\npath = \"a.onnx\n");
  EXPECT_EQ(error.rfind("config.toml:2:", 0), 0u) << error;
  EXPECT_TRUE(Contains(error, "TOML syntax error"));
}

TEST(ConfigParser, UnknownKeySuggestsNearest) {
  std::string text = std::string(kMinimal) + "[optimizer]\ntype = \"sgd\"\n\nmomentun = 0.9\n";
  EXPECT_EQ(ErrorOf(text),
            "config.toml:8: unknown key 'optimizer.momentun'; did you mean 'optimizer.momentum'?");
  // The same section twice is a TOML error.
  EXPECT_TRUE(Contains(ErrorOf(std::string(kMinimal) + "[data]\n"), "config.toml:5:"));
  // Swapped letters count as one edit.
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\n[data]\ntrain = \"synthetic\"\nbatch_szie = 4\n"),
            "config.toml:5: unknown key 'data.batch_szie'; did you mean 'data.batch_size'?");
}

TEST(ConfigParser, KeyInWrongSectionSuggestsItsSection) {
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "[train]\nlr = 0.1\n"),
            "config.toml:6: unknown key 'train.lr'; did you mean 'optimizer.lr'?");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "[train]\nmomentun = 0.1\n"),
            "config.toml:6: unknown key 'train.momentun'; did you mean 'optimizer.momentum'?");
  // A key before any section header.
  EXPECT_EQ(ErrorOf("lr = 0.1\n" + std::string(kMinimal)),
            "config.toml:1: key 'lr' is outside any section; did you mean 'optimizer.lr'?");
}

TEST(ConfigParser, UnknownKeyWithoutNearMatchListsTheSection) {
  std::string error = ErrorOf(std::string(kMinimal) + "[loss]\nzzzzzz = 1\n");
  EXPECT_EQ(error,
            "config.toml:6: unknown key 'loss.zzzzzz'; [loss] keys are type, label_smoothing, "
            "output");
}

TEST(ConfigParser, UnknownSectionSuggestsNearest) {
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "[optimiser]\nlr = 0.1\n"),
            "config.toml:5: unknown section [optimiser]; did you mean [optimizer]?");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "[training]\nepochs = 1\n"),
            "config.toml:5: unknown section [training]; did you mean [train]?");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "[distribute]\nalgorithm = \"lasgd\"\n"),
            "config.toml:5: unknown section [distribute]; did you mean [distributed]?");
  EXPECT_EQ(
      ErrorOf(std::string(kMinimal) + "[distributed]\nalgorithm = \"sgp\"\nwarmup_steps = 10\n"),
      "config.toml:7: distributed.warmup_steps applies only with distributed.algorithm = "
      "\"lasgd\" or \"local\"; got \"sgp\"");
  // The world size comes from mpirun, not the config.
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "[distributed]\nworld_size = 2\n").substr(0, 56),
            "config.toml:6: unknown key 'distributed.world_size'; [di");
  EXPECT_EQ(ErrorOf("model = \"m.onnx\"\n"),
            "config.toml:1: 'model' must be a section ([model]), got string \"m.onnx\"");
}

TEST(ConfigParser, FirstProblemInFileOrderIsReported) {
  // toml++ keeps keys sorted; the message must be about line 6, not 'aaa' on line 7.
  std::string text = std::string(kMinimal) + "[train]\nzzz_unknown = 1\naaa_unknown = 2\n";
  EXPECT_TRUE(Contains(ErrorOf(text), "config.toml:6: unknown key 'train.zzz_unknown'"));
}

TEST(ConfigParser, WrongTypesSayWhatWasExpected) {
  std::string base = std::string(kMinimal);
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nlr = \"0.1\"\n"),
            "config.toml:6: optimizer.lr: expected a float, got string \"0.1\"");
  EXPECT_EQ(
      ErrorOf("[model]\npath = \"m.onnx\"\n[data]\ntrain = \"synthetic\"\nbatch_size = 64.5\n"),
      "config.toml:5: data.batch_size: expected an integer, got float 64.5");
  EXPECT_EQ(
      ErrorOf(base + "[train]\nprogress = \"yes\"\n"),
      "config.toml:6: train.progress: expected a boolean (true or false), got string \"yes\"");
  EXPECT_EQ(ErrorOf("[model]\npath = 3\n"),
            "config.toml:2: model.path: expected a string, got integer 3");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nlr = nan\n"),
            "config.toml:6: optimizer.lr: expected a finite float, got float nan");
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\n[data]\ntrain = \"synthetic\"\nseed = -1\n"),
            "config.toml:5: data.seed: expected a non-negative integer, got integer -1");
  // An array element that is wrong is reported on its own line.
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\n[data]\ntrain = \"synthetic\"\nmean = [0.5,\n"
                    "  \"0.4\"]\nstd = [1, 1]\n"),
            "config.toml:6: data.mean: expected an array of floats, but element [1]: expected a "
            "float, got string \"0.4\"");
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\ntrainable = \"fc.weight\"\n"),
            "config.toml:3: model.trainable: expected an array of strings, got string "
            "\"fc.weight\"");
}

TEST(ConfigParser, OutOfRangeValuesNameTheRule) {
  std::string base = std::string(kMinimal);
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nlr = -0.1\n"),
            "config.toml:6: optimizer.lr must be > 0, got -0.1");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nlr = 0\n"),
            "config.toml:6: optimizer.lr must be > 0, got 0.0");
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\n[data]\ntrain = \"synthetic\"\nbatch_size = 0\n"),
            "config.toml:5: data.batch_size must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nmomentum = 1.0\n"),
            "config.toml:6: optimizer.momentum must be in [0, 1), got 1.0");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nmomentum = -0.5\n"),
            "config.toml:6: optimizer.momentum must be in [0, 1), got -0.5");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\nbeta2 = 1\n"),
            "config.toml:6: optimizer.beta2 must be in [0, 1), got 1.0");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\neps = 0\n"),
            "config.toml:6: optimizer.eps must be > 0, got 0.0");
  EXPECT_EQ(ErrorOf(base + "[train]\naccumulate = 0\n"),
            "config.toml:6: train.accumulate must be >= 1, got 0");
  EXPECT_EQ(ErrorOf(base + "[loss]\nlabel_smoothing = 1\n"),
            "config.toml:6: loss.label_smoothing must be in [0, 1), got 1.0");
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\n[data]\ntrain = \"synthetic\"\nmean = [0.5]\n"
                    "std = [0]\n"),
            "config.toml:6: data.std must be each > 0, got [0.0]");
  EXPECT_EQ(ErrorOf(base + "[schedule]\ntype = \"multistep\"\nmilestones = [30, 20]\n"),
            "config.toml:7: schedule.milestones must be strictly increasing, got [30, 20]");
}

TEST(ConfigParser, UnknownChoicesListTheValidOnes) {
  std::string base = std::string(kMinimal);
  EXPECT_EQ(ErrorOf(base + "[optimizer]\ntype = \"sgdd\"\n"),
            "config.toml:6: optimizer.type must be one of sgd, adam, adamw, got \"sgdd\"; did "
            "you mean \"sgd\"?");
  EXPECT_EQ(ErrorOf(base + "[optimizer]\ntype = \"lamb\"\n"),
            "config.toml:6: optimizer.type must be one of sgd, adam, adamw, got \"lamb\"");
  EXPECT_EQ(ErrorOf(base + "[loss]\ntype = \"nll\"\n"),
            "config.toml:6: loss.type must be one of cross_entropy, mse, bce_logits, graph, got "
            "\"nll\"");
  EXPECT_EQ(ErrorOf(base + "[schedule]\ntype = \"cosin\"\n"),
            "config.toml:6: schedule.type must be one of constant, step, multistep, cosine, got "
            "\"cosin\"; did you mean \"cosine\"?");
  EXPECT_EQ(ErrorOf(base + "[train]\nbn_running_var = \"biased\"\n"),
            "config.toml:6: train.bn_running_var must be one of population, unbiased, got "
            "\"biased\"");
  EXPECT_EQ(ErrorOf(base + "[train]\non_nan = \"ignore\"\n"),
            "config.toml:6: train.on_nan must be one of stop, skip, got \"ignore\"");
}

TEST(ConfigParser, RequiredKeys) {
  EXPECT_EQ(ErrorOf("[data]\ntrain = \"synthetic\"\n"),
            "config.toml: [model] path is required: the exported forward ONNX model to train");
  EXPECT_EQ(ErrorOf("[model]\npath = \"\"\n[data]\ntrain = \"synthetic\"\n"),
            "config.toml:2: [model] path is required: the exported forward ONNX model to train");
  EXPECT_EQ(ErrorOf("[model]\npath = \"m.onnx\"\n"),
            "config.toml: [data] train is required: the training data, as idx:PREFIX, "
            "cifar:DIR, npz:FILE or synthetic[:OPTIONS]");
  EXPECT_EQ(ErrorOf(""),
            "config.toml: [model] path is required: the exported forward ONNX "
            "model to train");
}

TEST(ConfigParser, DataSpecsAreChecked) {
  auto spec_error = [](const std::string& key, const std::string& spec) {
    std::string data = key == "train" ? "" : "train = \"synthetic\"\n";
    return ErrorOf("[model]\npath = \"m.onnx\"\n[data]\n" + data + key + " = \"" + spec + "\"\n");
  };
  EXPECT_EQ(spec_error("train", "mnist:/d"),
            "config.toml:4: data.train must be idx:PREFIX, cifar:DIR, npz:FILE or "
            "synthetic[:OPTIONS], got \"mnist:/d\"");
  EXPECT_TRUE(Contains(spec_error("train", "idx:"), "data.train must be idx:PREFIX"));
  EXPECT_TRUE(Contains(spec_error("train", "npz:,x=a"), "data.train must be idx:PREFIX"));
  EXPECT_TRUE(Contains(spec_error("train", "synthetics"), "data.train must be"));
  EXPECT_EQ(spec_error("test", "/data/test"),
            "config.toml:5: data.test must be empty, or idx:PREFIX, cifar:DIR, npz:FILE or "
            "synthetic[:OPTIONS], got \"/data/test\"");
  EXPECT_EQ(spec_error("test", "synthetic:n=64,split=test"), "<parsed OK>");
  EXPECT_EQ(spec_error("test", "cifar:/c,split=test"), "<parsed OK>");
}

TEST(ConfigParser, RulesAcrossKeys) {
  const std::string model = "[model]\npath = \"m.onnx\"\n";
  const std::string data = "[data]\ntrain = \"synthetic\"\n";
  EXPECT_EQ(ErrorOf(model + data + "mean = [0.5, 0.5]\n"),
            "config.toml:5: data.mean and data.std go together (one value per channel each); "
            "only mean is given");
  EXPECT_EQ(ErrorOf(model + data + "mean = [0.5, 0.5]\nstd = [0.2]\n"),
            "config.toml:6: data.mean has 2 values but data.std has 1");
  EXPECT_EQ(ErrorOf(model + data + "[loss]\ntype = \"graph\"\n"),
            "config.toml:6: loss.type = \"graph\" needs loss.output: the name of the model's "
            "loss output");
  EXPECT_EQ(ErrorOf(model + data + "[loss]\ntype = \"mse\"\noutput = \"l\"\n"),
            "config.toml:7: loss.output applies only with loss.type = \"graph\"; got \"mse\"");
  EXPECT_EQ(ErrorOf(model + data + "[loss]\ntype = \"mse\"\nlabel_smoothing = 0.1\n"),
            "config.toml:7: loss.label_smoothing applies only with loss.type = "
            "\"cross_entropy\"; got \"mse\"");
  auto graph = Parse(model + data + "[loss]\ntype = \"graph\"\noutput = \"loss\"\n");
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->loss.output, "loss");
  EXPECT_EQ(ErrorOf(model + data + "[optimizer]\nnesterov = true\n"),
            "config.toml:6: optimizer.nesterov needs optimizer.momentum > 0 and "
            "optimizer.dampening = 0; got momentum 0.0, dampening 0.0");
  EXPECT_EQ(ErrorOf(model + data + "[schedule]\ntype = \"step\"\n"),
            "config.toml: schedule.type = \"step\" needs schedule.step_size >= 1, got 0");
  EXPECT_EQ(ErrorOf(model + data + "[schedule]\ntype = \"multistep\"\n"),
            "config.toml: schedule.type = \"multistep\" needs schedule.milestones, e.g. "
            "[30, 60, 90]");
  EXPECT_EQ(ErrorOf(model + data + "[train]\nepochs = 0\n"),
            "config.toml:6: train.epochs must be >= 1 unless train.steps is set, got 0");
  EXPECT_EQ(ErrorOf(model + data + "[train]\nepochs = 0\nsteps = 10\n"), "<parsed OK>");
  EXPECT_EQ(ErrorOf(model + "trainable = [\"a\", \"b\"]\nfrozen = [\"b\"]\n" + data),
            "config.toml:4: model.frozen and model.trainable both name \"b\"");
}

TEST(ConfigParser, OverridesReplaceFileValues) {
  auto c = Parse(
      std::string(kMinimal) + "[optimizer]\nlr = 0.1\n",
      {"optimizer.lr=3e-4", "optimizer.type=adam", "data.shuffle=false", "data.mean=[0.5, 0.25]",
       "data.std=[1,2]", "schedule.milestones=[5]", "model.path=other.onnx", "model.input=0",
       "model.frozen=fc.weight, fc.bias", "data.train=idx:mnist/train,limit=10",
       "train.export=\"quoted.onnx\"", "optimizer.lr=0.25"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->optimizer.lr, 0.25);  // the last override wins
  EXPECT_EQ(c->optimizer.type, "adam");
  EXPECT_FALSE(c->data.shuffle);
  EXPECT_EQ(c->data.mean, (std::vector<float>{0.5f, 0.25f}));
  EXPECT_EQ(c->data.std, (std::vector<float>{1.f, 2.f}));
  EXPECT_EQ(c->schedule.milestones, (std::vector<int64_t>{5}));
  EXPECT_EQ(c->model.path, "other.onnx");  // a bare string
  EXPECT_EQ(c->model.input, "0");          // a string key keeps the raw text
  EXPECT_EQ(c->model.frozen, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_EQ(c->data.train, "idx:mnist/train,limit=10");
  EXPECT_EQ(c->train.export_path, "quoted.onnx");
  // An override may supply a required key the file lacks, and clear a list.
  auto only_overrides = Parse(
      "", {"model.path=m.onnx", "data.train=synthetic", "model.trainable=", "model.frozen=[]"});
  ASSERT_TRUE(only_overrides.ok()) << only_overrides.status();
  EXPECT_TRUE(only_overrides->model.trainable.empty());
}

TEST(ConfigParser, OverrideErrors) {
  EXPECT_EQ(ErrorOf(kMinimal, {"optimizer.lr"}), "--set optimizer.lr: expected section.key=value");
  EXPECT_EQ(ErrorOf(kMinimal, {"optimizer.lr=abc"}),
            "--set optimizer.lr=abc: optimizer.lr: expected a float, got string \"abc\"");
  EXPECT_EQ(ErrorOf(kMinimal, {"optimizer.lr=-1"}),
            "--set optimizer.lr=-1: optimizer.lr must be > 0, got -1.0");
  EXPECT_EQ(ErrorOf(kMinimal, {"optimizer.momentun=0.9"}),
            "--set optimizer.momentun=0.9: unknown key 'optimizer.momentun'; did you mean "
            "'optimizer.momentum'?");
  EXPECT_EQ(ErrorOf(kMinimal, {"optimiser.lr=0.9"}),
            "--set optimiser.lr=0.9: unknown section [optimiser]; did you mean [optimizer]?");
  EXPECT_EQ(ErrorOf(kMinimal, {"lr=0.9"}),
            "--set lr=0.9: key 'lr' is outside any section; did you mean 'optimizer.lr'?");
  EXPECT_EQ(ErrorOf(kMinimal, {"data.batch_size=8", "data.batch_size=0"}),
            "--set data.batch_size=0: data.batch_size must be >= 1, got 0");
  // A value is one TOML value: no smuggling a second key in.
  EXPECT_EQ(ErrorOf(kMinimal, {"data.seed=1\nlr = 2"}),
            "--set data.seed=1\nlr = 2: data.seed: expected a non-negative integer, got string "
            "\"1\\u000alr = 2\"");
}

TEST(ConfigParser, RelativePathsFollowTheConfigFile) {
  const std::string text = R"([model]
path = "models/net.onnx"
[data]
train = "idx:../data/mnist/train,limit=100"
test = "cifar:/abs/cifar"
[train]
resume = "ckpt/step-100.ckpt"
export = "net-final.onnx"
)";
  auto c = ParseTrainConfig(text, "/work/exp/config.toml", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.path, "/work/exp/models/net.onnx");
  EXPECT_EQ(c->data.train, "idx:/work/data/mnist/train,limit=100");
  EXPECT_EQ(c->data.test, "cifar:/abs/cifar");
  EXPECT_EQ(c->train.out_dir, "/work/exp/out");  // the default too
  EXPECT_EQ(c->train.resume, "/work/exp/ckpt/step-100.ckpt");
  EXPECT_EQ(c->train.export_path, "net-final.onnx");  // relative to out_dir, not resolved

  // A relative config path gives paths relative to the working directory.
  auto rel = ParseTrainConfig(text, "exp/config.toml", {});
  ASSERT_TRUE(rel.ok()) << rel.status();
  EXPECT_EQ(rel->model.path, "exp/models/net.onnx");
  EXPECT_EQ(rel->data.train, "idx:data/mnist/train,limit=100");

  // Paths from --set are the user's, relative to the working directory;
  // "auto" and synthetic are not paths.
  auto over = ParseTrainConfig(text, "/work/exp/config.toml",
                               {"model.path=here.onnx", "train.out_dir=runs", "train.resume=auto",
                                "data.test=npz:t.npz", "data.train=synthetic:n=64"});
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(over->model.path, "here.onnx");
  EXPECT_EQ(over->train.out_dir, "runs");
  EXPECT_EQ(over->train.resume, "auto");
  EXPECT_EQ(over->data.test, "npz:t.npz");
  EXPECT_EQ(over->data.train, "synthetic:n=64");
}

TEST(ConfigParser, LoadReadsFilesAndNamesMissingOnes) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lasgd_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::path file = dir / "run.toml";
  {
    std::ofstream out(file);
    out << "[model]\npath = \"net.onnx\"\n[data]\ntrain = \"npz:d.npz\"\n[optimizer]\nlr = x\n";
  }
  auto bad = LoadTrainConfig(file.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()).rfind(file.string() + ":6:", 0), 0u)
      << bad.status();
  {
    std::ofstream out(file);
    out << "[model]\npath = \"net.onnx\"\n[data]\ntrain = \"npz:d.npz\"\n";
  }
  auto good = LoadTrainConfig(file.string(), {"optimizer.lr=0.5"});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->model.path, (dir / "net.onnx").string());
  EXPECT_EQ(good->data.train, "npz:" + (dir / "d.npz").string());
  EXPECT_EQ(good->config_path, file.string());
  EXPECT_DOUBLE_EQ(good->optimizer.lr, 0.5);

  auto missing = LoadTrainConfig((dir / "nope.toml").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(missing.status().message()), "nope.toml"));
  std::filesystem::remove_all(dir);
}

// docs/config.md is generated; a key added to the table without rewriting the
// file fails here. LASGD_UPDATE_DOCS=1 rewrites it.
TEST(ConfigParser, DocsMatchTheKeyTable) {
  const std::string path = std::string(LASGD_SOURCE_DIR) + "/docs/config.md";
  const std::string generated = ConfigReferenceMarkdown();
  const char* update = std::getenv("LASGD_UPDATE_DOCS");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream out(path, std::ios::binary);
    out << generated;
    ASSERT_TRUE(out.good()) << "could not write " << path;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << path << " is missing; run this test with LASGD_UPDATE_DOCS=1";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), generated)
      << path << " is out of date; run this test with LASGD_UPDATE_DOCS=1 to rewrite it";
  for (const std::string& name : ConfigKeyNames()) {
    std::string key = name.substr(name.find('.') + 1);
    EXPECT_TRUE(Contains(generated, "| `" + key + "` |")) << name;
  }
}

// README.md carries the same reference (from "## Training configuration" up
// to the next "## " heading); LASGD_UPDATE_DOCS=1 splices it in.
TEST(ConfigParser, ReadmeEmbedsTheReference) {
  const std::string readme_path = std::string(LASGD_SOURCE_DIR) + "/README.md";
  const std::string generated = ConfigReferenceMarkdown();
  const std::string heading = "## Training configuration";
  const size_t from = generated.find(heading);
  ASSERT_NE(from, std::string::npos);
  const std::string section = generated.substr(from);
  std::string readme;
  {
    std::ifstream in(readme_path, std::ios::binary);
    ASSERT_TRUE(in.good()) << readme_path;
    std::stringstream text;
    text << in.rdbuf();
    readme = text.str();
  }
  const size_t start = readme.find(heading);
  ASSERT_NE(start, std::string::npos) << "README.md lacks '" << heading << "'";
  size_t end = readme.find("\n## ", start + heading.size());
  end = end == std::string::npos ? readme.size() : end + 1;
  const char* update = std::getenv("LASGD_UPDATE_DOCS");
  if (update != nullptr && std::string(update) == "1") {
    std::string body = section;
    while (!body.empty() && body.back() == '\n') body.pop_back();
    readme = readme.substr(0, start) + body + "\n\n" + readme.substr(end);
    std::ofstream out(readme_path, std::ios::binary);
    out << readme;
    ASSERT_TRUE(out.good()) << "could not write " << readme_path;
    end = start + body.size() + 2;
  }
  std::string embedded = readme.substr(start, end - start);
  while (!embedded.empty() && embedded.back() == '\n') embedded.pop_back();
  std::string want = section;
  while (!want.empty() && want.back() == '\n') want.pop_back();
  EXPECT_EQ(embedded, want)
      << "README.md's configuration reference is out of date; run config_parser_test with "
         "LASGD_UPDATE_DOCS=1";
}

// The example in the docs is a valid config.
TEST(ConfigParser, DocsExampleParses) {
  std::string md = ConfigReferenceMarkdown();
  size_t begin = md.find("```toml\n");
  ASSERT_NE(begin, std::string::npos);
  begin += 8;
  size_t end = md.find("```", begin);
  ASSERT_NE(end, std::string::npos);
  auto c = ParseTrainConfig(md.substr(begin, end - begin), "/exp/config.toml", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.path, "/exp/resnet20.onnx");
  EXPECT_EQ(c->data.test, "cifar:/exp/cifar-10-batches-bin,split=test");
  EXPECT_EQ(c->schedule.milestones, (std::vector<int64_t>{100, 150}));
}

}  // namespace
}  // namespace lasgd::runtime

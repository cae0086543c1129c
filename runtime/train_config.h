// Everything `lasgd-run train` can be told, as parsed from CONFIG.toml plus
// `--set section.key=value` overrides. Field names follow the TOML keys
// (section.key), which are documented key by key in the README; the names
// listed in the training issue are fixed because outside tests rely on them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lasgd::runtime {

struct ModelConfig {
  std::string path;    // [model] path: the exported forward ONNX model
  std::string input;   // [model] input: graph input fed with data ("" = the only input)
  std::string output;  // [model] output: the logits/prediction output ("" = the first output)
  std::vector<std::string>
      trainable;  // [model] trainable: only these initializers train (empty = all)
  std::vector<std::string> frozen;  // [model] frozen: these never train
};

struct DataConfig {
  std::string train;            // [data] train: idx:PREFIX, cifar:DIR, npz:FILE, synthetic
  std::string test;             // [data] test: same forms ("" = no evaluation)
  int64_t batch_size = 64;      // [data] batch_size
  int64_t test_batch_size = 0;  // [data] test_batch_size (0 = batch_size)
  bool shuffle = true;          // [data] shuffle
  uint64_t seed = 0;            // [data] seed: shuffling, augmentation, dropout, init
  bool drop_last = true;        // [data] drop_last
  std::vector<float> mean;      // [data] mean: per-channel normalisation (empty = none)
  std::vector<float> std;       // [data] std
  bool random_crop = false;     // [data] random_crop: pad by crop_padding and crop back
  int64_t crop_padding = 4;     // [data] crop_padding
  bool random_flip = false;     // [data] random_flip: horizontal flip with p=0.5
  int64_t prefetch = 4;         // [data] prefetch: batches prepared ahead by a thread
  int64_t num_classes = 0;      // [data] num_classes (0 = from the model's output)
  // synthetic source only
  int64_t synthetic_samples = 4096;  // [data] synthetic_samples
};

struct LossConfig {
  std::string type = "cross_entropy";  // [loss] type: cross_entropy, mse, bce_logits, graph
  float label_smoothing = 0.f;         // [loss] label_smoothing (cross_entropy)
  std::string output;                  // [loss] output: with type=graph, the loss output's name
};

struct OptimizerConfig {
  std::string type = "sgd";   // [optimizer] type: sgd, adam, adamw
  double lr = 0.01;           // [optimizer] lr: base learning rate
  double momentum = 0.0;      // [optimizer] momentum (sgd)
  double dampening = 0.0;     // [optimizer] dampening (sgd)
  bool nesterov = false;      // [optimizer] nesterov (sgd)
  double weight_decay = 0.0;  // [optimizer] weight_decay (L2 for sgd/adam, decoupled for adamw)
  double beta1 = 0.9;         // [optimizer] beta1 (adam, adamw)
  double beta2 = 0.999;       // [optimizer] beta2
  double eps = 1e-8;          // [optimizer] eps
  double clip_grad_norm = 0;  // [optimizer] clip_grad_norm: global-norm clipping (0 = off)
};

struct ScheduleConfig {
  std::string type = "constant";    // [schedule] type: constant, step, multistep, cosine
  int64_t warmup_steps = 0;         // [schedule] warmup_steps: linear warm-up from 0
  int64_t step_size = 0;            // [schedule] step_size (step): epochs between decays
  std::vector<int64_t> milestones;  // [schedule] milestones (multistep): epochs
  double gamma = 0.1;               // [schedule] gamma: decay factor
  double min_lr = 0.0;              // [schedule] min_lr (cosine)
  int64_t base_batch_size = 0;      // [schedule] base_batch_size: lr *= batch/base (0 = off)
};

struct TrainSection {
  int64_t epochs = 1;           // [train] epochs
  int64_t steps = 0;            // [train] steps: when > 0, overrides epochs
  std::string out_dir = "out";  // [train] out_dir: metrics.jsonl, checkpoints, export
  std::string
      export_path;  // [train] export: ONNX inference model path ("" = none; relative to out_dir)
  std::string bn_running_var =
      "population";        // [train] bn_running_var: population (ONNX) or unbiased (PyTorch)
  int64_t accumulate = 1;  // [train] accumulate: micro-batches per optimizer step
  // [train] program: builtin (loss, autodiff and optimizer from this config)
  // or training_info (run the model's own ONNX TrainingInfoProto as written)
  std::string program = "builtin";
  int64_t threads = 0;                  // [train] threads (0 = OMP_NUM_THREADS / all cores)
  int64_t eval_every_epochs = 1;        // [train] eval_every_epochs
  int64_t checkpoint_every_epochs = 1;  // [train] checkpoint_every_epochs (0 = never)
  int64_t keep_checkpoints = 3;         // [train] keep_checkpoints: the last N are kept
  std::string resume;  // [train] resume: a checkpoint file, or "auto" (latest in out_dir)
  std::string on_nan =
      "stop";  // [train] on_nan: stop (error naming step and node) or skip (drop the step)
  bool progress = true;  // [train] progress: a progress bar on a terminal, plain lines otherwise
  int64_t log_every_steps =
      50;                    // [train] log_every_steps: plain progress lines when not a terminal
  double curve_every_s = 0;  // [train] curve_every_s: rank 0 snapshots its model this often
                             // (training wall time) and evaluates them all afterwards
};

// [distributed]: data-parallel training over MPI (`mpirun -np N lasgd-run
// train ...`). See distributed/ and DESIGN.md for the algorithms.
struct DistributedConfig {
  std::string algorithm = "none";  // [distributed] algorithm: none, lasgd, sync, local, sgp
  int64_t segment_steps = 8;       // [distributed] segment_steps: local steps between averages
  double segment_ms = 0;  // [distributed] segment_ms: segments in wall time (lasgd; 0 = steps)
  bool average_buffers = true;  // [distributed] average_buffers: average BN statistics too
  // [distributed] average_optimizer_state: average the optimizer's float32
  // state (momentum, Adam moments) with the weights (lasgd, local)
  bool average_optimizer_state = false;
  int64_t warmup_steps = 0;  // [distributed] warmup_steps: synchronous steps first (lasgd, local)
  std::string apply = "boundary";  // [distributed] apply: boundary or when_ready (lasgd)
  double bucket_mb = 4;            // [distributed] bucket_mb: gradient bucket size (sync)
  double timeout_s = 120;          // [distributed] timeout_s: a collective slower than this fails
  // Straggler and network emulation, so that one machine can stand in for a cluster.
  int64_t slow_rank = -1;  // [distributed] slow_rank: this rank computes slower (-1 = none)
  double slow_factor = 1;  // [distributed] slow_factor: its steps take this many times longer
  double jitter_ms = 0;    // [distributed] jitter_ms: mean random extra delay per step, every rank
  double latency_ms = 0;   // [distributed] latency_ms: added to every message
  double bandwidth_mb_s = 0;  // [distributed] bandwidth_mb_s: per-message bandwidth (0 = unlimited)
  // Fault injection for tests: `kill` (SIGKILL) or `hang` (SIGSTOP) rank
  // fault_rank at step fault_step.
  std::string fault = "none";  // [distributed] fault: none, kill, hang
  int64_t fault_rank = -1;     // [distributed] fault_rank
  int64_t fault_step = 0;      // [distributed] fault_step
};

struct TrainConfig {
  ModelConfig model;
  DataConfig data;
  LossConfig loss;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainSection train;
  DistributedConfig distributed;
  std::string config_path;  // where it was read from (for relative paths)
};

}  // namespace lasgd::runtime

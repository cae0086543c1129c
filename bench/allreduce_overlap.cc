// How much of an All-Reduce the MPI communicator hides behind computation.
//
// On every rank (run under mpirun), for each buffer size B:
//   comm      = a blocking All-Reduce of B alone,
//   compute   = a fixed amount of work alone (single-threaded float matmuls,
//               sized to --compute-factor x comm unless --compute-ms is given),
//   overlap   = AllReduceAsync(B); the same work; Wait(),
// one of each per iteration, back to back, each started together after a
// barrier; a run's time is the slowest rank's. Hidden fraction = (comm +
// compute - overlap) / comm per iteration, then the median over --iters
// (the columns are medians too): 1 when the All-Reduce costs nothing on top
// of the work, 0 when it is fully serialized. It also charges the All-Reduce
// for slowing the work down (on a machine with fewer free cores than ranks x 2
// threads, MPI's copies and the progress thread take CPU from the work). wait
// is the time the caller still spent blocked in Wait, so 1 - wait/comm is the
// part of the communication the caller did not see.
//
//   mpirun --oversubscribe -np 2 lasgd-bench-allreduce-overlap --mb=1.7,44
//       [--latency-ms=1 --bandwidth-mb-s=100] [--iters=9] [--compute-ms=C]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "distributed/mpi_communicator.h"

namespace {

using lasgd::distributed::Communicator;
using lasgd::distributed::ReduceOp;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One unit of work: a 96x96x96 float matmul (about 1.8 MFLOP), cache
// resident, like a training step's kernels on one thread.
// With --compute=sleep a unit sleeps 0.5 ms instead: the caller then
// leaves the CPU to MPI, as a rank whose work runs on a GPU does.
struct Work {
  static constexpr int kN = 96;
  std::vector<float> a, b, c;
  bool sleep = false;
  Work() : a(kN * kN, 0.5f), b(kN * kN, 0.25f), c(kN * kN, 0.f) {}
  void Run(int64_t units) {
    if (sleep) {
      std::this_thread::sleep_for(std::chrono::microseconds(500 * units));
      return;
    }
    for (int64_t u = 0; u < units; ++u) {
      for (int i = 0; i < kN; ++i) {
        for (int k = 0; k < kN; ++k) {
          const float aik = a[i * kN + k];
          for (int j = 0; j < kN; ++j) c[i * kN + j] += aik * b[k * kN + j];
        }
      }
      a[u % (kN * kN)] = c[(u * 7) % (kN * kN)] * 1e-9f;  // keep the compiler honest
    }
  }
};

// The slowest rank's value (every rank gets it).
double MaxOverRanks(Communicator& comm, double value) {
  std::vector<float> all(comm.size(), 0.f);
  all[comm.rank()] = static_cast<float>(value);
  if (!comm.AllReduce(all.data(), all.size(), ReduceOp::kSum).ok()) return NAN;
  return *std::max_element(all.begin(), all.end());
}

// Per iteration, the slowest rank's value: the job's time for that run.
std::vector<double> MaxOverRanks(Communicator& comm, const std::vector<double>& values) {
  const size_t n = values.size();
  std::vector<float> all(n * comm.size(), 0.f);
  for (size_t i = 0; i < n; ++i) all[comm.rank() * n + i] = static_cast<float>(values[i]);
  std::vector<double> result(n, NAN);
  if (!comm.AllReduce(all.data(), all.size(), ReduceOp::kSum).ok()) return result;
  for (size_t i = 0; i < n; ++i) {
    result[i] = all[i];
    for (int r = 1; r < comm.size(); ++r) result[i] = std::max<double>(result[i], all[r * n + i]);
  }
  return result;
}

bool Check(const absl::Status& status, const char* what) {
  if (status.ok()) return true;
  std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> sizes_mb = {1.7, 44};
  int iters = 9;
  double compute_factor = 2.0, compute_ms = 0;
  bool sleep_compute = false;
  lasgd::distributed::CommOptions options;
  options.timeout_s = 300;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* prefix, double* out) {
      return absl::StartsWith(a, prefix) &&
             absl::SimpleAtod(a.substr(std::string(prefix).size()), out);
    };
    double v = 0;
    if (absl::StartsWith(a, "--mb=")) {
      sizes_mb.clear();
      for (absl::string_view s : absl::StrSplit(a.substr(5), ',')) {
        double mb = 0;
        if (!absl::SimpleAtod(s, &mb) || mb <= 0) {
          std::fprintf(stderr, "bad size in %s\n", a.c_str());
          return 2;
        }
        sizes_mb.push_back(mb);
      }
    } else if (a == "--compute=sleep" || a == "--compute=matmul") {
      sleep_compute = a == "--compute=sleep";
    } else if (value("--iters=", &v)) {
      iters = std::max(1, static_cast<int>(v));
    } else if (value("--compute-factor=", &compute_factor) || value("--compute-ms=", &compute_ms) ||
               value("--latency-ms=", &options.latency_ms) ||
               value("--bandwidth-mb-s=", &options.bandwidth_mb_s)) {
      continue;
    } else {
      std::fprintf(
          stderr,
          "usage: mpirun -np N %s [--mb=1.7,44] [--iters=9] [--compute-factor=2 | "
          "--compute-ms=C] [--compute=matmul|sleep] [--latency-ms=L] [--bandwidth-mb-s=BW]\n",
          argv[0]);
      return 2;
    }
  }

  auto comm_or = lasgd::distributed::CreateMpiCommunicator(options);
  if (!comm_or.ok()) {
    std::fprintf(stderr, "%s\n", comm_or.status().ToString().c_str());
    return 1;
  }
  Communicator& comm = **comm_or;
  const bool root = comm.rank() == 0;
  Work work;
  work.sleep = sleep_compute;

  // Time per unit of work with every rank computing at once (as in the
  // overlapped runs): the machine may have fewer cores than ranks.
  if (!Check(comm.Barrier(), "barrier")) return 1;
  work.Run(20);
  std::vector<double> per_unit;
  for (int r = 0; r < 3; ++r) {
    if (!Check(comm.Barrier(), "barrier")) return 1;
    Clock::time_point t0 = Clock::now();
    work.Run(50);
    per_unit.push_back(Ms(t0, Clock::now()) / 50);
  }
  const double unit_ms = MaxOverRanks(comm, Median(per_unit));

  if (root) {
    std::printf("# %s, %d iterations per median, work unit %.3f ms (%s)\n", comm.Describe().c_str(),
                iters, unit_ms, sleep_compute ? "sleep" : "matmul");
    std::printf(
        "| ranks | MB | emulated | comm ms | compute ms | overlapped ms | hidden | wait ms | "
        "1 - wait/comm |\n"
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
  }
  for (double mb : sizes_mb) {
    const size_t count = static_cast<size_t>(mb * 1e6 / sizeof(float));
    std::vector<float> buffer(count, 1.f);
    // Warm-up: first-touch, MPI's registration of the buffer.
    for (int r = 0; r < 2; ++r) {
      if (!Check(comm.AllReduce(buffer.data(), count, ReduceOp::kMean), "all-reduce")) return 1;
    }
    // The job's load changes under a shared machine: the three measurements
    // alternate, so that each median sees the same conditions.
    auto measure_comm = [&](std::vector<double>* runs) {
      if (!Check(comm.Barrier(), "barrier")) return false;
      Clock::time_point t0 = Clock::now();
      if (!Check(comm.AllReduce(buffer.data(), count, ReduceOp::kMean), "all-reduce")) return false;
      runs->push_back(Ms(t0, Clock::now()));
      return true;
    };
    std::vector<double> comm_runs, compute_runs, overlap_runs, wait_runs;
    // The amount of work follows the communication time measured first.
    for (int it = 0; it < 3; ++it) {
      if (!measure_comm(&comm_runs)) return 1;
    }
    const double target_ms =
        compute_ms > 0 ? compute_ms : compute_factor * MaxOverRanks(comm, Median(comm_runs));
    const int64_t units = std::max<int64_t>(1, std::llround(target_ms / unit_ms));
    comm_runs.clear();
    for (int it = 0; it < iters; ++it) {
      if (!measure_comm(&comm_runs)) return 1;

      if (!Check(comm.Barrier(), "barrier")) return 1;
      Clock::time_point t0 = Clock::now();
      work.Run(units);
      compute_runs.push_back(Ms(t0, Clock::now()));

      if (!Check(comm.Barrier(), "barrier")) return 1;
      const double wait_before = comm.stats().wait_s;
      t0 = Clock::now();
      auto request = comm.AllReduceAsync(buffer.data(), count, ReduceOp::kMean);
      work.Run(units);
      if (!Check(request->Wait(), "all-reduce")) return 1;
      overlap_runs.push_back(Ms(t0, Clock::now()));
      wait_runs.push_back((comm.stats().wait_s - wait_before) * 1e3);
    }
    // Each iteration's three runs happened back to back under the same load:
    // the hidden fraction is taken per iteration, then the median.
    const std::vector<double> job_comm = MaxOverRanks(comm, comm_runs);
    const std::vector<double> job_compute = MaxOverRanks(comm, compute_runs);
    const std::vector<double> job_overlap = MaxOverRanks(comm, overlap_runs);
    const std::vector<double> job_wait = MaxOverRanks(comm, wait_runs);
    std::vector<double> hidden_runs, hidden_wait_runs;
    for (int it = 0; it < iters; ++it) {
      hidden_runs.push_back((job_comm[it] + job_compute[it] - job_overlap[it]) / job_comm[it]);
      hidden_wait_runs.push_back(1 - job_wait[it] / job_comm[it]);
    }
    const double comm_ms = Median(job_comm);
    const double compute = Median(job_compute);
    const double overlapped = Median(job_overlap);
    const double wait = Median(job_wait);
    const double hidden = Median(hidden_runs);
    const double hidden_wait = Median(hidden_wait_runs);
    if (root) {
      std::string emulated = "none";
      if (options.latency_ms > 0 || options.bandwidth_mb_s > 0) {
        char text[64];
        std::snprintf(text, sizeof(text), "%g ms, %g MB/s", options.latency_ms,
                      options.bandwidth_mb_s);
        emulated = text;
      }
      std::printf("| %d | %.1f | %s | %.1f | %.1f | %.1f | %.0f %% | %.2f | %.1f %% |\n",
                  comm.size(), mb, emulated.c_str(), comm_ms, compute, overlapped, 100 * hidden,
                  wait, 100 * hidden_wait);
      std::fflush(stdout);
    }
  }
  return 0;
}

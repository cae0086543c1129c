// The bridge between stored and wanted oneDNN layouts (ops/onednn_layout.h):
// operands that borrow per-thread scratch by slot must never share memory
// within one kernel invocation, however many are in flight, a slot must
// survive growing between runs, and prepared (constant) operands must keep a
// buffer of their own.
#include "ops/onednn_layout.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ops/onednn_engine.h"

namespace lasgd::ops::onednn {
namespace {

using dnnl::memory;

int64_t Elements(const Shape& s) { return s[0] * s[1] * s[2] * s[3]; }

// Offset (in floats) of element (n, c, h, w) in a plain NCHW or a
// channel-blocked buffer, written out by hand so that the test does not
// depend on the reorders it checks.
int64_t Offset(const Shape& s, bool blocked, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (!blocked) return ((n * s[1] + c) * s[2] + h) * s[3] + w;
  const int64_t b = ChannelBlock(), cb = (s[1] + b - 1) / b;
  return (((n * cb + c / b) * s[2] + h) * s[3] + w) * b + c % b;
}

size_t FloatsIn(const Shape& s, bool blocked) {
  return blocked ? BlockedBytes(s) / sizeof(float) : static_cast<size_t>(Elements(s));
}

template <typename F>
void ForEach(const Shape& s, F f) {
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w) f(n, c, h, w);
}

// A deterministic value per element and seed.
float Value(int seed, int64_t n, int64_t c, int64_t h, int64_t w) {
  return static_cast<float>(seed * 1000 + n * 97 + c * 13 + h * 5 + w) * 0.25f - 7.f;
}

// Fills every scratch slot up to `slots` with NaN, so that a reorder that
// leaves anything (channel padding included) to what the buffer held before
// shows up in the results.
void PoisonScratch(int slots, size_t bytes) {
  for (int slot = 0; slot < slots; ++slot) {
    auto* p = static_cast<float*>(ThreadScratch(slot, bytes));
    std::fill(p, p + bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  }
}

struct Spec {
  Shape shape;
  bool stored_blocked;  // wanted is the other layout
};

// What a kernel with many reordered operands does in one run: every input
// is brought in and every output target fetched before anything is
// computed, then the outputs are computed from the inputs (read as they are
// at that moment) and reordered back. out_k = 2 * in_k + sum(in_{k+1}),
// where the sum is taken from in_{k+1}'s wanted buffer after the earlier
// outputs were written, so an output sharing memory with a later input
// changes the result. Returns the number of mismatching elements.
int RunManyOperands(int seed, const std::vector<Spec>& inputs, int outputs, bool check_disjoint) {
  dnnl::stream& stream = CpuStream();
  const int n_in = static_cast<int>(inputs.size());
  std::vector<std::vector<float>> stored(n_in);
  std::vector<Operand> in_ops(n_in), out_ops(outputs);
  std::vector<memory> in_mem(n_in), out_mem(outputs);
  for (int i = 0; i < n_in; ++i) {
    const Spec& sp = inputs[i];
    stored[i].assign(FloatsIn(sp.shape, sp.stored_blocked), 0.f);  // padding zero
    ForEach(sp.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      stored[i][Offset(sp.shape, sp.stored_blocked, n, c, h, w)] = Value(seed + i, n, c, h, w);
    });
    in_ops[i].Init(StoredDesc(sp.shape, sp.stored_blocked),
                   StoredDesc(sp.shape, !sp.stored_blocked), /*is_output=*/false, /*slot=*/i);
    EXPECT_TRUE(in_ops[i].reordered()) << "input " << i;
  }
  std::vector<std::vector<float>> out_stored(outputs);
  for (int k = 0; k < outputs; ++k) {
    const Spec& sp = inputs[k];
    out_stored[k].assign(FloatsIn(sp.shape, sp.stored_blocked), -1.f);
    out_ops[k].Init(StoredDesc(sp.shape, sp.stored_blocked),
                    StoredDesc(sp.shape, !sp.stored_blocked), /*is_output=*/true,
                    /*slot=*/n_in + k);
  }
  // All of them in flight at once, as one primitive call would hold them.
  for (int i = 0; i < n_in; ++i) in_mem[i] = in_ops[i].In(stored[i].data(), stream);
  for (int k = 0; k < outputs; ++k) out_mem[k] = out_ops[k].Target(out_stored[k].data());
  stream.wait();

  if (check_disjoint) {
    std::vector<memory> all = in_mem;
    all.insert(all.end(), out_mem.begin(), out_mem.end());
    for (size_t a = 0; a < all.size(); ++a) {
      const auto* pa = static_cast<const char*>(all[a].get_data_handle());
      for (size_t b = a + 1; b < all.size(); ++b) {
        const auto* pb = static_cast<const char*>(all[b].get_data_handle());
        const bool disjoint =
            pa + all[a].get_desc().get_size() <= pb || pb + all[b].get_desc().get_size() <= pa;
        EXPECT_TRUE(disjoint) << "operands " << a << " and " << b << " share memory";
      }
    }
  }

  // Inputs in the wanted layout hold the values, and zeros in the channel
  // padding (the scratch was poisoned before).
  int bad = 0;
  for (int i = 0; i < n_in; ++i) {
    const Spec& sp = inputs[i];
    const bool wanted_blocked = !sp.stored_blocked;
    const auto* p = static_cast<const float*>(in_mem[i].get_data_handle());
    ForEach(sp.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      if (p[Offset(sp.shape, wanted_blocked, n, c, h, w)] != Value(seed + i, n, c, h, w)) ++bad;
    });
    if (wanted_blocked) {
      const int64_t b = ChannelBlock(), padded = (sp.shape[1] + b - 1) / b * b;
      const Shape s = sp.shape;
      for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = s[1]; c < padded; ++c)
          for (int64_t h = 0; h < s[2]; ++h)
            for (int64_t w = 0; w < s[3]; ++w)
              if (p[Offset(s, true, n, c, h, w)] != 0.f) ++bad;
    }
  }

  for (int k = 0; k < outputs; ++k) {
    const Spec& sp = inputs[k];
    const Spec& next = inputs[(k + 1) % n_in];
    const auto* pn = static_cast<const float*>(in_mem[(k + 1) % n_in].get_data_handle());
    double sum = 0;
    ForEach(next.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      sum += pn[Offset(next.shape, !next.stored_blocked, n, c, h, w)];
    });
    const auto* pk = static_cast<const float*>(in_mem[k].get_data_handle());
    auto* po = static_cast<float*>(out_mem[k].get_data_handle());
    const bool wanted_blocked = !sp.stored_blocked;
    // Zero padding, as a oneDNN primitive writes it.
    if (wanted_blocked) std::fill(po, po + FloatsIn(sp.shape, true), 0.f);
    ForEach(sp.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      const int64_t o = Offset(sp.shape, wanted_blocked, n, c, h, w);
      po[o] = 2.f * pk[o] + static_cast<float>(sum);
    });
  }
  for (int k = outputs - 1; k >= 0; --k) out_ops[k].Out(out_stored[k].data(), stream);
  stream.wait();

  for (int k = 0; k < outputs; ++k) {
    const Spec& sp = inputs[k];
    const Spec& next = inputs[(k + 1) % n_in];
    double sum = 0;
    ForEach(next.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      sum += Value(seed + (k + 1) % n_in, n, c, h, w);
    });
    ForEach(sp.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      const float want = 2.f * Value(seed + k, n, c, h, w) + static_cast<float>(sum);
      const float got = out_stored[k][Offset(sp.shape, sp.stored_blocked, n, c, h, w)];
      if (!(std::fabs(got - want) <= 1e-5f * std::fabs(want) + 1e-5f)) ++bad;
    });
  }
  // The stored inputs were only read.
  for (int i = 0; i < n_in; ++i) {
    const Spec& sp = inputs[i];
    ForEach(sp.shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      if (stored[i][Offset(sp.shape, sp.stored_blocked, n, c, h, w)] != Value(seed + i, n, c, h, w))
        ++bad;
    });
  }
  return bad;
}

// Channel counts that are and are not multiples of the block (8 or 16), in
// both directions, of different sizes.
std::vector<Spec> ManySpecs() {
  return {{{2, 5, 3, 4}, false}, {{1, 19, 2, 3}, true}, {{2, 16, 3, 3}, false},
          {{1, 3, 5, 5}, true},  {{3, 8, 2, 3}, false}, {{1, 33, 1, 2}, false},
          {{2, 12, 4, 1}, true}};
}

TEST(OnednnLayoutTest, ManyReorderedOperandsInFlightNeverShareScratch) {
  PoisonScratch(12, 64 * 1024);
  // 7 inputs and 5 outputs in flight in one "primitive call".
  EXPECT_EQ(RunManyOperands(/*seed=*/1, ManySpecs(), /*outputs=*/5, /*check_disjoint=*/true), 0);
  // A second run on the same (now dirty) scratch, with other values.
  EXPECT_EQ(RunManyOperands(/*seed=*/2, ManySpecs(), /*outputs=*/5, /*check_disjoint=*/true), 0);
}

TEST(OnednnLayoutTest, SlotGrowsBetweenRunsAndKeepsItsLargestSize) {
  // A thread of its own starts with an empty pool.
  std::thread t([] {
    EXPECT_EQ(ThreadScratchBytes(), 0u);
    dnnl::stream& stream = CpuStream();
    auto run = [&](const Shape& shape, int seed, void** handle) {
      std::vector<float> plain(Elements(shape));
      ForEach(shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
        plain[Offset(shape, false, n, c, h, w)] = Value(seed, n, c, h, w);
      });
      Operand op;
      op.Init(PlainDesc(shape), BlockedDesc(shape), /*is_output=*/false, /*slot=*/0);
      memory m = op.In(plain.data(), stream);
      stream.wait();
      *handle = m.get_data_handle();
      const auto* p = static_cast<const float*>(*handle);
      int bad = 0;
      ForEach(shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
        if (p[Offset(shape, true, n, c, h, w)] != Value(seed, n, c, h, w)) ++bad;
      });
      return bad;
    };
    const Shape small = {1, 3, 4, 4}, large = {2, 21, 9, 7};
    void *h_small = nullptr, *h_large = nullptr, *h_again = nullptr;
    EXPECT_EQ(run(small, 1, &h_small), 0);
    const size_t small_bytes = ThreadScratchBytes();
    EXPECT_GE(small_bytes, BlockedBytes(small));
    EXPECT_LT(small_bytes, BlockedBytes(large));
    EXPECT_EQ(run(large, 2, &h_large), 0);
    const size_t large_bytes = ThreadScratchBytes();
    EXPECT_GE(large_bytes, BlockedBytes(large));
    // Smaller again: the slot keeps its largest buffer and serves from it.
    EXPECT_EQ(run(small, 3, &h_again), 0);
    EXPECT_EQ(ThreadScratchBytes(), large_bytes);
    EXPECT_EQ(h_again, h_large);
    // Many operands on this thread too, after the growth.
    EXPECT_EQ(RunManyOperands(/*seed=*/4, ManySpecs(), /*outputs=*/3, /*check_disjoint=*/true), 0);
  });
  t.join();
}

TEST(OnednnLayoutTest, PreparedOperandKeepsItsOwnBuffer) {
  dnnl::stream& stream = CpuStream();
  const Shape shape = {2, 5, 3, 3};
  auto plain_values = [&](int seed) {
    std::vector<float> v(Elements(shape));
    ForEach(shape, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
      v[Offset(shape, false, n, c, h, w)] = Value(seed, n, c, h, w);
    });
    return v;
  };
  std::vector<float> first = plain_values(1), second = plain_values(2), other = plain_values(3);
  Operand weights;
  weights.Init(PlainDesc(shape), BlockedDesc(shape), /*is_output=*/false, /*slot=*/0);
  weights.Prepare(first.data(), stream);
  ASSERT_TRUE(weights.prepared());
  // Another kernel's operand in the same slot overwrites that slot's scratch.
  Operand activation;
  activation.Init(PlainDesc(shape), BlockedDesc(shape), /*is_output=*/false, /*slot=*/0);
  memory scratch = activation.In(other.data(), stream);
  memory w = weights.In(second.data(), stream);  // ignores `second`
  stream.wait();
  EXPECT_NE(w.get_data_handle(), scratch.get_data_handle());
  const auto* p = static_cast<const float*>(w.get_data_handle());
  int bad = 0;
  ForEach(shape, [&](int64_t n, int64_t c, int64_t h, int64_t w_) {
    if (p[Offset(shape, true, n, c, h, w_)] != Value(1, n, c, h, w_)) ++bad;
  });
  EXPECT_EQ(bad, 0);
  // Init again (a new primitive) forgets the prepared buffer.
  weights.Init(PlainDesc(shape), BlockedDesc(shape), /*is_output=*/false, /*slot=*/0);
  EXPECT_FALSE(weights.prepared());
}

TEST(OnednnLayoutTest, SameBytesNeedNoScratch) {
  // [N, C, 1, 1] with C a multiple of the block is the same bytes either way.
  const Shape shape = {2, ChannelBlock() * 2, 1, 1};
  Operand op;
  op.Init(PlainDesc(shape), BlockedDesc(shape), /*is_output=*/false, /*slot=*/0);
  EXPECT_FALSE(op.reordered());
  std::vector<float> data(Elements(shape), 1.f);
  memory m = op.In(data.data(), CpuStream());
  EXPECT_EQ(m.get_data_handle(), data.data());
  EXPECT_EQ(op.Target(data.data()).get_data_handle(), data.data());
}

TEST(OnednnLayoutTest, ThreadsHaveScratchOfTheirOwn) {
  // Two plans running at once on different threads.
  std::vector<int> bad(2, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([t, &bad] {
      int total = 0;
      for (int round = 0; round < 10; ++round)
        total += RunManyOperands(/*seed=*/10 * t + round, ManySpecs(), /*outputs=*/5,
                                 /*check_disjoint=*/false);
      bad[t] = total;
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad[0], 0);
  EXPECT_EQ(bad[1], 0);
}

}  // namespace
}  // namespace lasgd::ops::onednn

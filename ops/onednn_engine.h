// The process-wide oneDNN CPU engine and a per-thread stream on it, shared by
// every oneDNN kernel (matmul, batch normalization, ...).
//
// One engine per process is what oneDNN expects (primitives created on it can
// be cached and reused); streams are per thread because a dnnl::stream is not
// meant to be used by several threads at once, and kernels of different plans
// may run concurrently.
#pragma once

#include "oneapi/dnnl/dnnl.hpp"

namespace lasgd::ops::onednn {

// The CPU engine, created on first use.
dnnl::engine& CpuEngine();
// An in-order stream on CpuEngine() owned by the calling thread.
dnnl::stream& CpuStream();

}  // namespace lasgd::ops::onednn

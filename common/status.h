// Error-handling helpers shared by every room of lasgd.
//
// Debian's abseil (20220623) predates ABSL_RETURN_IF_ERROR / ASSIGN_OR_RETURN,
// so we carry our own small versions. Library code never exits: it returns a
// Status, and each layer on the way up adds the context it knows about
// ("while importing node 'conv1' (Conv, opset 13): ...").
#pragma once

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace lasgd {

// Returns `status` with `context` prefixed to its message; OK stays OK.
inline absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace lasgd

#define LASGD_STATUS_CONCAT_INNER_(a, b) a##b
#define LASGD_STATUS_CONCAT_(a, b) LASGD_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status lasgd_status_ = (expr);         \
    if (!lasgd_status_.ok()) return lasgd_status_; \
  } while (0)

// Like RETURN_IF_ERROR, prefixing `context` (anything absl::StrCat takes).
#define RETURN_IF_ERROR_CTX(expr, ...)                                         \
  do {                                                                         \
    ::absl::Status lasgd_status_ = (expr);                                     \
    if (!lasgd_status_.ok())                                                   \
      return ::lasgd::WithContext(lasgd_status_, ::absl::StrCat(__VA_ARGS__)); \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

// `ASSIGN_OR_RETURN(auto x, MaybeX());` declares x or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(LASGD_STATUS_CONCAT_(lasgd_statusor_, __LINE__), lhs, expr)

// Reading the end-to-end fixtures of tests/fixtures (see its README.md) and
// running small command-line tools from tests.
#pragma once

#include <dirent.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/tensor.h"

namespace lasgd::testing {

struct FixtureMeta {
  std::string dir;
  std::string model;                                         // absolute path
  std::vector<std::pair<std::string, std::string>> inputs;   // name, .npy path
  std::vector<std::pair<std::string, std::string>> outputs;  // name, .npy path (compared)
  std::vector<std::pair<std::string, Shape>> unchecked;      // name, expected shape
  double rtol = 1e-4, atol = 1e-5;
};

inline absl::StatusOr<FixtureMeta> ReadFixtureMeta(const std::string& dir) {
  std::ifstream in(dir + "/meta.txt");
  if (!in) return absl::NotFoundError(absl::StrCat(dir, "/meta.txt is missing"));
  FixtureMeta meta;
  meta.dir = dir;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.empty()) continue;
    auto bad = [&] {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": bad line '", line, "'"));
    };
    if (f[0] == "model" && f.size() == 2) {
      meta.model = dir + "/" + f[1];
    } else if (f[0] == "input" && f.size() == 3) {
      meta.inputs.push_back({f[1], dir + "/" + f[2]});
    } else if (f[0] == "output" && f.size() == 3) {
      meta.outputs.push_back({f[1], dir + "/" + f[2]});
    } else if (f[0] == "output_unchecked" && f.size() == 3) {
      Shape shape;
      for (absl::string_view d : absl::StrSplit(f[2], ',')) {
        int64_t v;
        if (!absl::SimpleAtoi(d, &v)) return bad();
        shape.push_back(v);
      }
      meta.unchecked.push_back({f[1], shape});
    } else if (f[0] == "tolerance" && f.size() == 3) {
      if (!absl::SimpleAtod(f[1], &meta.rtol) || !absl::SimpleAtod(f[2], &meta.atol)) return bad();
    } else {
      return bad();
    }
  }
  if (meta.model.empty()) return absl::InvalidArgumentError(dir + "/meta.txt names no model");
  return meta;
}

// Names of the sub-folders of `root` that hold a meta.txt, sorted.
inline std::vector<std::string> ListFixtures(const std::string& root) {
  std::vector<std::string> names;
  DIR* d = opendir(root.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (std::ifstream(root + "/" + name + "/meta.txt").good()) names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

struct CommandResult {
  int exit_code = -1;  // -1: did not exit normally (a crash)
  std::string output;  // stdout and stderr together
};

// Runs `command` through the shell; `output` collects stdout and stderr
// together, or only stderr when `stderr_only`.
inline CommandResult RunCommand(const std::string& command, bool stderr_only = false) {
  CommandResult r;
  FILE* pipe = popen((command + (stderr_only ? " 2>&1 >/dev/null" : " 2>&1")).c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

// Quotes for /bin/sh.
inline std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

}  // namespace lasgd::testing

// Reads a `lasgd-run train` configuration: a TOML file plus `--set
// section.key=value` overrides, into a validated TrainConfig.
//
// Every accepted key lives in one table in config_parser.cc (name, type,
// default, allowed values, meaning, setter); the parser, the validator and
// the reference documentation (docs/config.md, see ConfigReferenceMarkdown)
// are all driven by it, so adding a key is one line there plus its field in
// train_config.h.
//
// Errors are one line and name the place: "config.toml:7: unknown key
// 'optimizer.momentun'; did you mean 'optimizer.momentum'?", or
// "--set optimizer.lr=-1: optimizer.lr must be > 0, got -1.0".
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/train_config.h"

namespace lasgd::runtime {

// Reads and parses the TOML file at `path`, then applies `overrides`.
// Each override is "section.key=value" (what follows `--set`); the value is
// TOML value syntax (1e-3, true, [0.5, 0.5], "text") and falls back to the raw
// text as a string where that does not parse, or where the key holds a string
// (so `model.path=foo.onnx` and `model.input=0` work unquoted); string-list
// keys also take bare comma-separated text (`model.frozen=fc.weight,fc.bias`).
//
// Relative paths written in the file (model.path, the path part of
// idx:/cifar:/npz: data specs, train.out_dir including its default, and
// train.resume unless "auto") are resolved against the file's directory;
// paths given in overrides stay relative to the working directory.
// Returns InvalidArgument for a bad config, NotFound when the file is missing.
absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path,
                                            const std::vector<std::string>& overrides = {});

// Like LoadTrainConfig on text already read; `source_name` is the file name
// used in messages, for relative paths and as TrainConfig::config_path.
absl::StatusOr<TrainConfig> ParseTrainConfig(const std::string& toml_text,
                                             const std::string& source_name,
                                             const std::vector<std::string>& overrides = {});

// Every accepted key as "section.key", in documentation order.
std::vector<std::string> ConfigKeyNames();

// The configuration reference in Markdown, generated from the key table:
// docs/config.md holds exactly this text (a unit test checks it; rerun that
// test with LASGD_UPDATE_DOCS=1 to rewrite the file after changing a key).
std::string ConfigReferenceMarkdown();

}  // namespace lasgd::runtime

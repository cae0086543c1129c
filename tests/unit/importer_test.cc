// The ONNX importer: every TensorProto storage form, external data, Constant
// nodes, initializers listed as inputs, symbolic dims and opset imports.
#include "importers/onnx_importer.h"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "graph/model_stats.h"
#include "gtest/gtest.h"
#include "onnx/onnx_pb.h"

namespace lasgd::importers {
namespace {

onnx::TensorProto Proto(onnx::TensorProto::DataType dtype, std::vector<int64_t> dims,
                        const std::string& name = "t") {
  onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(dtype);
  for (int64_t d : dims) p.add_dims(d);
  return p;
}

Tensor Convert(const onnx::TensorProto& p, const std::string& dir = ".") {
  auto t = TensorFromProto(p, dir);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : Tensor();
}

TEST(ImporterTensorTest, RawDataFloat32) {
  auto p = Proto(onnx::TensorProto::FLOAT, {2, 2});
  const float v[] = {1.5f, -2.f, 0.f, 3.25f};
  p.set_raw_data(std::string(reinterpret_cast<const char*>(v), sizeof(v)));
  Tensor t = Convert(p);
  EXPECT_EQ(t.TypeString(), "float32[2,2]");
  EXPECT_EQ(t.ToDoubleVector(), (std::vector<double>{1.5, -2, 0, 3.25}));
}

TEST(ImporterTensorTest, RawDataInt64AndScalar) {
  auto p = Proto(onnx::TensorProto::INT64, {});
  int64_t v = -(int64_t{1} << 40);
  p.set_raw_data(std::string(reinterpret_cast<const char*>(&v), 8));
  Tensor t = Convert(p);
  EXPECT_EQ(t.rank(), 0);
  EXPECT_EQ(t.data<int64_t>()[0], v);
}

TEST(ImporterTensorTest, FloatData) {
  auto p = Proto(onnx::TensorProto::FLOAT, {3});
  for (float f : {0.5f, -1.f, 1e30f}) p.add_float_data(f);
  Tensor t = Convert(p);
  EXPECT_EQ(t.data<float>()[0], 0.5f);
  EXPECT_EQ(t.data<float>()[2], 1e30f);
}

TEST(ImporterTensorTest, DoubleData) {
  auto p = Proto(onnx::TensorProto::DOUBLE, {2});
  p.add_double_data(0.1);
  p.add_double_data(-1e300);
  Tensor t = Convert(p);
  EXPECT_EQ(t.dtype(), DataType::kFloat64);
  EXPECT_EQ(t.data<double>()[0], 0.1);
  EXPECT_EQ(t.data<double>()[1], -1e300);
}

TEST(ImporterTensorTest, Int64Data) {
  auto p = Proto(onnx::TensorProto::INT64, {3});
  for (int64_t v :
       {int64_t{-1}, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()})
    p.add_int64_data(v);
  Tensor t = Convert(p);
  EXPECT_EQ(t.data<int64_t>()[0], -1);
  EXPECT_EQ(t.data<int64_t>()[1], std::numeric_limits<int64_t>::max());
  EXPECT_EQ(t.data<int64_t>()[2], std::numeric_limits<int64_t>::min());
}

// int8, uint8, int16, uint16, int32 and bool all live in int32_data.
TEST(ImporterTensorTest, Int32DataSmallIntegersAndBool) {
  auto i8 = Proto(onnx::TensorProto::INT8, {3});
  for (int v : {-128, 0, 127}) i8.add_int32_data(v);
  Tensor t8 = Convert(i8);
  EXPECT_EQ(t8.dtype(), DataType::kInt8);
  EXPECT_EQ(t8.data<int8_t>()[0], -128);
  EXPECT_EQ(t8.data<int8_t>()[2], 127);

  auto u8 = Proto(onnx::TensorProto::UINT8, {2});
  for (int v : {0, 255}) u8.add_int32_data(v);
  EXPECT_EQ(Convert(u8).data<uint8_t>()[1], 255);

  auto i16 = Proto(onnx::TensorProto::INT16, {2});
  for (int v : {-32768, 32767}) i16.add_int32_data(v);
  EXPECT_EQ(Convert(i16).data<int16_t>()[0], -32768);

  auto u16 = Proto(onnx::TensorProto::UINT16, {1});
  u16.add_int32_data(65535);
  EXPECT_EQ(Convert(u16).data<uint16_t>()[0], 65535);

  auto i32 = Proto(onnx::TensorProto::INT32, {2});
  for (int v : {std::numeric_limits<int>::min(), std::numeric_limits<int>::max()})
    i32.add_int32_data(v);
  EXPECT_EQ(Convert(i32).data<int32_t>()[0], std::numeric_limits<int>::min());
  EXPECT_EQ(Convert(i32).data<int32_t>()[1], std::numeric_limits<int>::max());

  auto b = Proto(onnx::TensorProto::BOOL, {3});
  for (int v : {1, 0, 1}) b.add_int32_data(v);
  Tensor tb = Convert(b);
  EXPECT_EQ(tb.dtype(), DataType::kBool);
  EXPECT_EQ(tb.nbytes(), 3u);
  EXPECT_EQ(tb.ToDoubleVector(), (std::vector<double>{1, 0, 1}));
}

// float16 and bfloat16 keep their bit patterns in the low 16 bits of int32_data.
TEST(ImporterTensorTest, Int32DataHalfFloats) {
  auto h = Proto(onnx::TensorProto::FLOAT16, {3});
  for (int bits : {0x3C00, 0xC000, 0x7C00}) h.add_int32_data(bits);  // 1.0, -2.0, +inf
  Tensor th = Convert(h);
  EXPECT_EQ(th.dtype(), DataType::kFloat16);
  EXPECT_EQ(th.data<uint16_t>()[0], 0x3C00);
  EXPECT_EQ(th.data<uint16_t>()[1], 0xC000);
  EXPECT_EQ(th.data<uint16_t>()[2], 0x7C00);

  auto bf = Proto(onnx::TensorProto::BFLOAT16, {1});
  bf.add_int32_data(0x3F80);  // 1.0
  Tensor tbf = Convert(bf);
  EXPECT_EQ(tbf.dtype(), DataType::kBFloat16);
  EXPECT_EQ(tbf.data<uint16_t>()[0], 0x3F80);
}

TEST(ImporterTensorTest, Uint64Data) {
  auto u64 = Proto(onnx::TensorProto::UINT64, {3});
  // 2^64-1 and 2^53+1 are not representable as double: they must survive exactly.
  for (uint64_t v : {uint64_t{7}, std::numeric_limits<uint64_t>::max(), (uint64_t{1} << 53) + 1})
    u64.add_uint64_data(v);
  Tensor t = Convert(u64);
  EXPECT_EQ(t.data<uint64_t>()[0], 7u);
  EXPECT_EQ(t.data<uint64_t>()[1], std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(t.data<uint64_t>()[2], (uint64_t{1} << 53) + 1);

  auto u32 = Proto(onnx::TensorProto::UINT32, {2});
  for (uint64_t v : {uint64_t{0}, uint64_t{4294967295u}}) u32.add_uint64_data(v);
  Tensor t32 = Convert(u32);
  EXPECT_EQ(t32.dtype(), DataType::kUint32);
  EXPECT_EQ(t32.data<uint32_t>()[1], 4294967295u);
}

TEST(ImporterTensorTest, WrongCountsAreErrors) {
  auto p = Proto(onnx::TensorProto::INT8, {4}, "small");
  p.add_int32_data(1);
  auto t = TensorFromProto(p, ".");
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), "tensor 'small'")) << t.status();
  EXPECT_TRUE(absl::StrContains(t.status().message(), "int32_data holds 1")) << t.status();

  auto s = Proto(onnx::TensorProto::STRING, {1}, "text");
  s.add_string_data("hello");
  t = TensorFromProto(s, ".");
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), "string")) << t.status();
}

TEST(ImporterTensorTest, EmptyTensor) {
  auto p = Proto(onnx::TensorProto::FLOAT, {0, 3});
  Tensor t = Convert(p);
  EXPECT_EQ(t.num_elements(), 0);
  EXPECT_EQ(t.shape(), (Shape{0, 3}));
}

std::string WriteFile(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
  return path;
}

void SetExternal(onnx::TensorProto& p, const std::string& location, int64_t offset,
                 int64_t length) {
  p.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = p.add_external_data();
  loc->set_key("location");
  loc->set_value(location);
  auto* off = p.add_external_data();
  off->set_key("offset");
  off->set_value(std::to_string(offset));
  if (length >= 0) {
    auto* len = p.add_external_data();
    len->set_key("length");
    len->set_value(std::to_string(length));
  }
}

TEST(ImporterTensorTest, ExternalDataAtAnOffset) {
  std::string bytes(16, '\xff');  // a header to skip
  const float v[] = {1, 2, 3, 4, 5, 6};
  bytes.append(reinterpret_cast<const char*>(v), sizeof(v));
  WriteFile("lasgd_importer_ext.bin", bytes);
  auto p = Proto(onnx::TensorProto::FLOAT, {2, 3}, "ext");
  SetExternal(p, "lasgd_importer_ext.bin", 16, 24);
  Tensor t = Convert(p, ::testing::TempDir());
  EXPECT_EQ(t.ToDoubleVector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));

  auto no_length = Proto(onnx::TensorProto::FLOAT, {2}, "ext2");
  SetExternal(no_length, "lasgd_importer_ext.bin", 16 + 8, -1);
  EXPECT_EQ(Convert(no_length, ::testing::TempDir()).ToDoubleVector(), (std::vector<double>{3, 4}));

  auto wrong_length = Proto(onnx::TensorProto::FLOAT, {2}, "ext3");
  SetExternal(wrong_length, "lasgd_importer_ext.bin", 16, 12);
  auto bad = TensorFromProto(wrong_length, ::testing::TempDir());
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "length 12")) << bad.status();

  auto past_end = Proto(onnx::TensorProto::FLOAT, {4}, "ext4");
  SetExternal(past_end, "lasgd_importer_ext.bin", 30, -1);
  bad = TensorFromProto(past_end, ::testing::TempDir());
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "tensor 'ext4'")) << bad.status();
}

TEST(ImporterTensorTest, TensorProtoFileRoundTrip) {
  auto p = Proto(onnx::TensorProto::INT64, {2});
  p.add_int64_data(4);
  p.add_int64_data(-9);
  std::string path = WriteFile("lasgd_importer_tensor.pb", p.SerializeAsString());
  auto t = LoadTensorProtoFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->ToDoubleVector(), (std::vector<double>{4, -9}));
  auto missing = LoadTensorProtoFile(path + ".nope");
  EXPECT_FALSE(missing.ok());
}

// ------------------------------------------------------------------ models

void AddValueInfo(onnx::ValueInfoProto* vi, const std::string& name, int elem,
                  std::vector<std::string> dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* shape = tt->mutable_shape();
  for (const std::string& d : dims) {
    auto* dim = shape->add_dim();
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0])))
      dim->set_dim_value(std::stoll(d));
    else if (!d.empty())
      dim->set_dim_param(d);
  }
}

onnx::NodeProto* AddNode(onnx::GraphProto* g, const std::string& name, const std::string& op,
                         std::vector<std::string> inputs, std::vector<std::string> outputs) {
  auto* n = g->add_node();
  n->set_name(name);
  n->set_op_type(op);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return n;
}

// y = Relu(x + bias) * scale, where bias is an initializer also listed as a
// graph input (pre-IR-4 exporters do that) and scale comes from a Constant node.
onnx::ModelProto SmallModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("ai.onnx");
  op->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("small");
  AddValueInfo(g->add_input(), "x", onnx::TensorProto::FLOAT, {"N", "3"});
  AddValueInfo(g->add_input(), "bias", onnx::TensorProto::FLOAT, {"3"});
  AddValueInfo(g->add_output(), "y", onnx::TensorProto::FLOAT, {"N", "3"});
  auto bias = Proto(onnx::TensorProto::FLOAT, {3}, "bias");
  for (float f : {0.5f, -0.5f, 1.f}) bias.add_float_data(f);
  *g->add_initializer() = bias;
  auto* c = AddNode(g, "make_scale", "Constant", {}, {"scale"});
  auto* attr = c->add_attribute();
  attr->set_name("value_float");
  attr->set_type(onnx::AttributeProto::FLOAT);
  attr->set_f(2.f);
  AddNode(g, "", "Add", {"x", "bias"}, {"h"});
  AddNode(g, "", "Relu", {"h"}, {"r"});
  AddNode(g, "mul", "Mul", {"r", "scale"}, {"y"});
  return m;
}

TEST(ImporterModelTest, InitializerListedAsInputAndConstantNodes) {
  auto g = ImportModelProto(SmallModel(), ".");
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->inputs.size(), 1u);  // bias is a weight, not something to feed
  EXPECT_EQ(g->inputs[0].name, "x");
  EXPECT_EQ(g->inputs[0].TypeString(), "float32[N,3]");
  EXPECT_TRUE(g->IsInitializer("bias"));
  EXPECT_FALSE(g->constant_names.count("bias"));
  // The Constant node is gone; its value is a constant initializer.
  ASSERT_TRUE(g->IsInitializer("scale"));
  EXPECT_TRUE(g->constant_names.count("scale"));
  EXPECT_EQ(g->initializers.at("scale").rank(), 0);
  EXPECT_EQ(g->initializers.at("scale").GetAsDouble(0), 2.0);
  ASSERT_EQ(g->nodes.size(), 3u);
  for (const graph::Node& n : g->nodes) EXPECT_NE(n.op_type, "Constant");
  // Unnamed nodes get names errors can refer to.
  EXPECT_FALSE(g->nodes[0].name.empty());
  EXPECT_EQ(g->OpsetFor(""), 13);  // "ai.onnx" is the default domain
  // Constants are not parameters; the bias is.
  EXPECT_EQ(graph::FindTrainableParameters(*g), (std::set<std::string>{"bias"}));
}

TEST(ImporterModelTest, ConstantNodeForms) {
  onnx::ModelProto m = SmallModel();
  auto* g = m.mutable_graph();
  auto add_constant = [&](const std::string& out, auto fill) {
    auto* n = AddNode(g, "c_" + out, "Constant", {}, {out});
    fill(n->add_attribute());
  };
  add_constant("ints", [](onnx::AttributeProto* a) {
    a->set_name("value_ints");
    a->set_type(onnx::AttributeProto::INTS);
    a->add_ints(3);
    a->add_ints(-1);
  });
  add_constant("int", [](onnx::AttributeProto* a) {
    a->set_name("value_int");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(42);
  });
  add_constant("floats", [](onnx::AttributeProto* a) {
    a->set_name("value_floats");
    a->set_type(onnx::AttributeProto::FLOATS);
    a->add_floats(1.5f);
  });
  add_constant("tensor", [](onnx::AttributeProto* a) {
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    auto t = Proto(onnx::TensorProto::INT32, {2});
    t.add_int32_data(5);
    t.add_int32_data(6);
    *a->mutable_t() = t;
  });
  auto imported = ImportModelProto(m, ".");
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->initializers.at("ints").TypeString(), "int64[2]");
  EXPECT_EQ(imported->initializers.at("ints").ToDoubleVector(), (std::vector<double>{3, -1}));
  EXPECT_EQ(imported->initializers.at("int").TypeString(), "int64[]");
  EXPECT_EQ(imported->initializers.at("floats").TypeString(), "float32[1]");
  EXPECT_EQ(imported->initializers.at("tensor").TypeString(), "int32[2]");
  for (const char* c : {"ints", "int", "floats", "tensor"})
    EXPECT_TRUE(imported->constant_names.count(c)) << c;
}

TEST(ImporterModelTest, AttributesOfEveryKind) {
  onnx::ModelProto m = SmallModel();
  auto* n = m.mutable_graph()->mutable_node(3);  // mul
  auto* f = n->add_attribute();
  f->set_name("f");
  f->set_f(0.25f);  // no type: old exporters leave it unset
  auto* s = n->add_attribute();
  s->set_name("s");
  s->set_type(onnx::AttributeProto::STRINGS);
  s->add_strings("a");
  s->add_strings("b");
  auto g = ImportModelProto(m, ".");
  ASSERT_TRUE(g.ok()) << g.status();
  const graph::Node& mul = g->nodes.back();
  EXPECT_EQ(mul.GetFloat("f", 0), 0.25f);
  ASSERT_NE(mul.FindAttribute("s"), nullptr);
  EXPECT_EQ(mul.FindAttribute("s")->strings, (std::vector<std::string>{"a", "b"}));
}

TEST(ImporterModelTest, LoadFromFileWithExternalData) {
  onnx::ModelProto m = SmallModel();
  auto* bias = m.mutable_graph()->mutable_initializer(0);
  bias->clear_float_data();
  const float v[] = {7, 8, 9};
  WriteFile("lasgd_importer_model.bin", std::string(reinterpret_cast<const char*>(v), 12));
  SetExternal(*bias, "lasgd_importer_model.bin", 0, 12);
  std::string path = WriteFile("lasgd_importer_model.onnx", m.SerializeAsString());
  auto g = LoadOnnxModel(path);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->initializers.at("bias").ToDoubleVector(), (std::vector<double>{7, 8, 9}));
}

TEST(ImporterModelTest, ModelErrors) {
  onnx::ModelProto m = SmallModel();
  m.set_ir_version(0);
  auto g = ImportModelProto(m, ".");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "ir_version")) << g.status();

  m = SmallModel();
  *m.mutable_graph()->add_initializer() = m.graph().initializer(0);
  g = ImportModelProto(m, ".");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "'bias' is defined twice")) << g.status();

  m = SmallModel();
  m.mutable_graph()->mutable_node(0)->clear_attribute();
  g = ImportModelProto(m, ".");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "node 'make_scale' (Constant)"))
      << g.status();
}

}  // namespace
}  // namespace lasgd::importers

#!/usr/bin/env python3
"""Writes the corpus of broken models that tests/unit/bad_input_test.cc feeds
to the importer, the compiler and the command-line tools. Each must give an
error that names what is wrong, never a crash.

    python3 tests/bad_models/make_bad_models.py [OUT_DIR]   (default: this folder)

Only onnx and numpy are needed; every file is tiny and deterministic. The
models are built by hand with onnx.helper and saved without onnx.checker,
which would refuse most of them.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def model(nodes, inputs, outputs, initializers=(), opset=13, value_info=(), name="bad"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers),
                              value_info=list(value_info))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="make_bad_models.py")
    m.ir_version = 8
    return m


def save(m, filename):
    with open(os.path.join(OUT, filename), "wb") as f:
        f.write(m.SerializeToString())


def write_bytes(filename, data):
    with open(os.path.join(OUT, filename), "wb") as f:
        f.write(data)


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def weight(name, shape, seed=0):
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return helper.make_tensor(name, FLOAT, shape, values.tobytes(), raw=True)


def good_mlp():
    """A valid model: the source of the truncated and missing-initializer cases."""
    return model(
        [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], name="fc", transB=1),
         helper.make_node("Relu", ["h"], ["y"], name="relu")],
        [vi("x", FLOAT, [2, 4])], [vi("y", FLOAT, [2, 3])],
        [weight("fc.weight", [3, 4]), weight("fc.bias", [3], 1)])


def external_model(location, length):
    t = TensorProto()
    t.name = "w"
    t.data_type = FLOAT
    t.dims.extend([4, 4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                 [vi("x", FLOAT, [2, 4])], [vi("y", FLOAT, [2, 4])], [t])


def main():
    os.makedirs(OUT, exist_ok=True)

    write_bytes("empty.onnx", b"")
    good = good_mlp().SerializeToString()
    save(good_mlp(), "good_mlp.onnx")
    write_bytes("truncated.onnx", good[: len(good) // 2])
    # Seed chosen so that the bytes do not happen to parse as a ModelProto.
    rng = np.random.default_rng(7)
    junk = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    try:
        onnx.ModelProto.FromString(junk)
        raise SystemExit("random_bytes.onnx parses as ONNX; pick another seed")
    except Exception:
        pass
    write_bytes("random_bytes.onnx", junk)
    write_bytes("text.onnx", b"This is a text file, not an ONNX model.\nlayers: 3\n")

    m = good_mlp()
    del m.graph.initializer[0]  # fc.weight
    save(m, "missing_initializer.onnx")

    save(model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add_ghost")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])]), "undefined_value.onnx")

    save(model([helper.make_node("Add", ["x", "n"], ["y"], name="mixed_add")],
               [vi("x", FLOAT, [2, 3]), vi("n", INT64, [2, 3])], [vi("y", FLOAT, [2, 3])]),
         "dtype_mismatch.onnx")

    save(model([helper.make_node("MatMul", ["a", "b"], ["y"], name="bad_matmul")],
               [vi("a", FLOAT, [2, 3]), vi("b", FLOAT, [4, 5])], [vi("y", FLOAT, [2, 5])]),
         "matmul_shape_mismatch.onnx")

    save(model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 4])]),
         "declared_shape_mismatch.onnx")

    save(model([helper.make_node("FrobnicateTensor", ["x"], ["y"], name="frob")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])]), "unknown_op.onnx")

    relu = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    save(model(relu, [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])], opset=99),
         "opset_99.onnx")
    save(model(relu, [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])], opset=3),
         "opset_3.onnx")

    # The node downstream of the loop comes first: the error must name the
    # loop's nodes, not merely the first node that cannot be scheduled.
    save(model([helper.make_node("Relu", ["a"], ["y"], name="after_cycle"),
                helper.make_node("Add", ["x", "b"], ["a"], name="cycle_a"),
                helper.make_node("Relu", ["a"], ["b"], name="cycle_b")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])]), "cycle.onnx")

    save(model([helper.make_node("Relu", ["x"], ["y"], name="first_writer"),
                helper.make_node("Sigmoid", ["x"], ["y"], name="second_writer")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])]), "duplicate_output.onnx")

    save(external_model("missing_weights.bin", 64), "external_missing.onnx")
    save(external_model("truncated_weights.bin", 64), "external_truncated.onnx")
    write_bytes("truncated_weights.bin", np.ones(5, np.float32).tobytes())  # 20 of 64 bytes

    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [vi("t", FLOAT, [2, 3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [vi("e", FLOAT, [2, 3])])
    save(model([helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g,
                                 else_branch=else_g)],
               [vi("x", FLOAT, [2, 3]), vi("c", TensorProto.BOOL, [])],
               [vi("y", FLOAT, [2, 3])]), "control_flow_if.onnx")

    neg = TensorProto()
    neg.name = "neg_w"
    neg.data_type = FLOAT
    neg.dims.extend([-2, 3])
    save(model([helper.make_node("Add", ["x", "neg_w"], ["y"], name="add_neg")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])], [neg]),
         "negative_dim_initializer.onnx")

    short = TensorProto()
    short.name = "short_w"
    short.data_type = FLOAT
    short.dims.extend([2, 3])
    short.raw_data = b"\0" * 20  # float32[2,3] needs 24
    save(model([helper.make_node("Add", ["x", "short_w"], ["y"], name="add_short")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])], [short]),
         "raw_data_wrong_size.onnx")

    # A few more that real exporters and hand edits produce.
    save(model([helper.make_node("Relu", ["x"], ["h"], name="relu")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])]), "output_not_produced.onnx")
    save(model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_rank", kernel_shape=[3])],
               [vi("x", FLOAT, [1, 2, 5, 5]), vi("w", FLOAT, [4, 2, 3, 3])],
               [vi("y", FLOAT, [1, 4, 3, 3])]), "conv_bad_attribute.onnx")
    save(model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
               [vi("x", FLOAT, ["batch", 3])], [vi("y", FLOAT, ["batch", 3])]),
         "symbolic_batch.onnx")
    float_count = TensorProto()
    float_count.name = "w"
    float_count.data_type = FLOAT
    float_count.dims.extend([2, 3])
    float_count.float_data.extend([1.0, 2.0, 3.0])  # 3 of 6 values
    save(model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])], [float_count]),
         "float_data_wrong_count.onnx")

    m = external_model("weights.bin", 64)
    m.graph.initializer[0].external_data[1].value = "sixteen"  # offset
    save(m, "external_bad_offset.onnx")
    save(external_model("../outside.bin", 64), "external_outside_folder.onnx")
    save(model([helper.make_node("Relu", ["x", "x"], ["y"], name="relu_two")],
               [vi("x", FLOAT, [2, 3])], [vi("y", FLOAT, [2, 3])]), "too_many_inputs.onnx")
    bad_value = TensorProto()
    bad_value.data_type = FLOAT
    bad_value.dims.extend([4])
    bad_value.raw_data = b"\0" * 3
    save(model([helper.make_node("Constant", [], ["c"], name="bad_const", value=bad_value),
                helper.make_node("Add", ["x", "c"], ["y"], name="add_c")],
               [vi("x", FLOAT, [4])], [vi("y", FLOAT, [4])]), "constant_bad_value.onnx")
    no_type = onnx.ValueInfoProto()
    no_type.name = "x"
    save(model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [no_type],
               [vi("x", FLOAT, [2, 3])]), "input_without_type.onnx")
    seq = helper.make_tensor_sequence_value_info("s", FLOAT, [2])
    save(model([helper.make_node("SequenceLength", ["s"], ["y"], name="len")], [seq],
               [vi("y", INT64, [])]), "sequence_input.onnx")
    no_graph = onnx.ModelProto()
    no_graph.ir_version = 8
    save(no_graph, "no_graph.onnx")

    # Inputs for the lasgd-run tests: good_mlp.onnx takes x: float32[2,4].
    np.save(os.path.join(OUT, "mlp_input_ok.npy"), np.ones((2, 4), np.float32))
    np.save(os.path.join(OUT, "mlp_input_wrong_shape.npy"), np.ones((2, 5), np.float32))
    np.save(os.path.join(OUT, "mlp_input_wrong_dtype.npy"), np.ones((2, 4), np.float64))
    np.save(os.path.join(OUT, "matmul_a.npy"), np.ones((2, 3), np.float32))
    np.save(os.path.join(OUT, "matmul_b.npy"), np.ones((4, 5), np.float32))
    write_bytes("not_npy.npy", b"definitely not numpy\n")


if __name__ == "__main__":
    main()

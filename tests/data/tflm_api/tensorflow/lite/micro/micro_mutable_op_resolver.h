// Test stand-in for TensorFlow Lite Micro's tensorflow/lite/micro/micro_mutable_op_resolver.h.
// TFLM's C++ sources cannot be fetched on the test machines, so the generated op resolver header is
// compiled against this: the same class template and Add...() method names as TFLM's resolver (the
// list its Python interpreter, python/tflite_micro/python_ops_resolver.cc, registers, plus
// AddBatchMatMul, which newer TFLM releases have), with TFLM's
// rules that a second registration of an operator, or one beyond the capacity, fails.
#ifndef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
#define TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

namespace tflite {

template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  TfLiteStatus AddAbs() { return Register(1); }
  TfLiteStatus AddAdd() { return Register(2); }
  TfLiteStatus AddAddN() { return Register(3); }
  TfLiteStatus AddArgMax() { return Register(4); }
  TfLiteStatus AddArgMin() { return Register(5); }
  TfLiteStatus AddAssignVariable() { return Register(6); }
  TfLiteStatus AddAveragePool2D() { return Register(7); }
  TfLiteStatus AddBatchMatMul() { return Register(200); }
  TfLiteStatus AddBatchToSpaceNd() { return Register(8); }
  TfLiteStatus AddBroadcastArgs() { return Register(9); }
  TfLiteStatus AddBroadcastTo() { return Register(10); }
  TfLiteStatus AddCallOnce() { return Register(11); }
  TfLiteStatus AddCast() { return Register(12); }
  TfLiteStatus AddCeil() { return Register(13); }
  TfLiteStatus AddCircularBuffer() { return Register(14); }
  TfLiteStatus AddConcatenation() { return Register(15); }
  TfLiteStatus AddConv2D() { return Register(16); }
  TfLiteStatus AddCos() { return Register(17); }
  TfLiteStatus AddCumSum() { return Register(18); }
  TfLiteStatus AddDelay() { return Register(19); }
  TfLiteStatus AddDepthToSpace() { return Register(20); }
  TfLiteStatus AddDepthwiseConv2D() { return Register(21); }
  TfLiteStatus AddDequantize() { return Register(22); }
  TfLiteStatus AddDetectionPostprocess() { return Register(23); }
  TfLiteStatus AddDiv() { return Register(24); }
  TfLiteStatus AddEnergy() { return Register(25); }
  TfLiteStatus AddElu() { return Register(26); }
  TfLiteStatus AddEqual() { return Register(27); }
  TfLiteStatus AddEthosU() { return Register(28); }
  TfLiteStatus AddExp() { return Register(29); }
  TfLiteStatus AddExpandDims() { return Register(30); }
  TfLiteStatus AddFftAutoScale() { return Register(31); }
  TfLiteStatus AddFill() { return Register(32); }
  TfLiteStatus AddFloor() { return Register(33); }
  TfLiteStatus AddFloorDiv() { return Register(34); }
  TfLiteStatus AddFloorMod() { return Register(35); }
  TfLiteStatus AddFramer() { return Register(36); }
  TfLiteStatus AddFullyConnected() { return Register(37); }
  TfLiteStatus AddGather() { return Register(38); }
  TfLiteStatus AddGatherNd() { return Register(39); }
  TfLiteStatus AddGreater() { return Register(40); }
  TfLiteStatus AddGreaterEqual() { return Register(41); }
  TfLiteStatus AddHardSwish() { return Register(42); }
  TfLiteStatus AddIf() { return Register(43); }
  TfLiteStatus AddIrfft() { return Register(44); }
  TfLiteStatus AddL2Normalization() { return Register(45); }
  TfLiteStatus AddL2Pool2D() { return Register(46); }
  TfLiteStatus AddLeakyRelu() { return Register(47); }
  TfLiteStatus AddLess() { return Register(48); }
  TfLiteStatus AddLessEqual() { return Register(49); }
  TfLiteStatus AddLog() { return Register(50); }
  TfLiteStatus AddLogicalAnd() { return Register(51); }
  TfLiteStatus AddLogicalNot() { return Register(52); }
  TfLiteStatus AddLogicalOr() { return Register(53); }
  TfLiteStatus AddLogistic() { return Register(54); }
  TfLiteStatus AddLogSoftmax() { return Register(55); }
  TfLiteStatus AddMaxPool2D() { return Register(56); }
  TfLiteStatus AddMaximum() { return Register(57); }
  TfLiteStatus AddMean() { return Register(58); }
  TfLiteStatus AddMinimum() { return Register(59); }
  TfLiteStatus AddMirrorPad() { return Register(60); }
  TfLiteStatus AddMul() { return Register(61); }
  TfLiteStatus AddNeg() { return Register(62); }
  TfLiteStatus AddNotEqual() { return Register(63); }
  TfLiteStatus AddOverlapAdd() { return Register(64); }
  TfLiteStatus AddPack() { return Register(65); }
  TfLiteStatus AddPad() { return Register(66); }
  TfLiteStatus AddPadV2() { return Register(67); }
  TfLiteStatus AddPrelu() { return Register(68); }
  TfLiteStatus AddQuantize() { return Register(69); }
  TfLiteStatus AddReadVariable() { return Register(70); }
  TfLiteStatus AddReduceMax() { return Register(71); }
  TfLiteStatus AddRelu() { return Register(72); }
  TfLiteStatus AddRelu6() { return Register(73); }
  TfLiteStatus AddReshape() { return Register(74); }
  TfLiteStatus AddResizeBilinear() { return Register(75); }
  TfLiteStatus AddResizeNearestNeighbor() { return Register(76); }
  TfLiteStatus AddRfft() { return Register(77); }
  TfLiteStatus AddRound() { return Register(78); }
  TfLiteStatus AddRsqrt() { return Register(79); }
  TfLiteStatus AddSelectV2() { return Register(80); }
  TfLiteStatus AddShape() { return Register(81); }
  TfLiteStatus AddSin() { return Register(82); }
  TfLiteStatus AddSlice() { return Register(83); }
  TfLiteStatus AddSoftmax() { return Register(84); }
  TfLiteStatus AddSpaceToBatchNd() { return Register(85); }
  TfLiteStatus AddSpaceToDepth() { return Register(86); }
  TfLiteStatus AddSplit() { return Register(87); }
  TfLiteStatus AddSplitV() { return Register(88); }
  TfLiteStatus AddSqrt() { return Register(89); }
  TfLiteStatus AddSquare() { return Register(90); }
  TfLiteStatus AddSquaredDifference() { return Register(91); }
  TfLiteStatus AddSqueeze() { return Register(92); }
  TfLiteStatus AddStridedSlice() { return Register(93); }
  TfLiteStatus AddStacker() { return Register(94); }
  TfLiteStatus AddSub() { return Register(95); }
  TfLiteStatus AddSum() { return Register(96); }
  TfLiteStatus AddSvdf() { return Register(97); }
  TfLiteStatus AddTanh() { return Register(98); }
  TfLiteStatus AddTranspose() { return Register(99); }
  TfLiteStatus AddTransposeConv() { return Register(100); }
  TfLiteStatus AddUnidirectionalSequenceLSTM() { return Register(101); }
  TfLiteStatus AddUnpack() { return Register(102); }
  TfLiteStatus AddVarHandle() { return Register(103); }
  TfLiteStatus AddWhile() { return Register(104); }
  TfLiteStatus AddWindow() { return Register(105); }
  TfLiteStatus AddZerosLike() { return Register(106); }

  unsigned int GetRegistrationLength() const { return len_; }

 private:
  TfLiteStatus Register(int code) {
    for (unsigned int i = 0; i < len_; ++i) {
      if (codes_[i] == code) return kTfLiteError;
    }
    if (len_ >= tOpCount) return kTfLiteError;
    codes_[len_++] = code;
    return kTfLiteOk;
  }

  int codes_[tOpCount];
  unsigned int len_ = 0;
};

}  // namespace tflite

#endif  // TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_

// Classifies one MNIST digit on a microcontroller with TensorFlow Lite Micro and prints it.
//
// Uses the files `mnistkit export runs/cnn --format tflm` writes: copy cnn_int8_tflm_model_data.h,
// cnn_int8_tflm_model_data.cc and cnn_int8_tflm_op_resolver.h into this folder (see README.md).
// For another model, replace the prefix cnn_int8_tflm / CNN_INT8_TFLM below with its file stem.
#include <TensorFlowLite.h>  // the Arduino_TensorFlowLite library (TFLM for Arduino)

#include <math.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "cnn_int8_tflm_model_data.h"
#include "cnn_int8_tflm_op_resolver.h"
#include "sample_digit.h"

namespace {
// The recommended arena the exporter measured on the TFLM interpreter (min + margin).
alignas(16) uint8_t tensor_arena[CNN_INT8_TFLM_ARENA_BYTES];
cnn_int8_tflm_op_resolver resolver;
}  // namespace

// Returns the digit (0-9), or a negative code saying which step failed.
int classify(const unsigned char* pixels) {
  const tflite::Model* model = tflite::GetModel(cnn_int8_tflm_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return -1;
  if (cnn_int8_tflm_register_ops(resolver) != kTfLiteOk) return -2;
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return -3;

  // The model takes int8: q = round(pixel / 255 / scale) + zero_point (the same rule as mnistkit.runtime).
  TfLiteTensor* input = interpreter.input(0);
  for (int i = 0; i < 28 * 28; ++i) {
    long q = lroundf(pixels[i] / 255.0f / input->params.scale) + input->params.zero_point;
    input->data.int8[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
  if (interpreter.Invoke() != kTfLiteOk) return -4;

  const TfLiteTensor* output = interpreter.output(0);
  int best = 0;
  for (int d = 1; d < 10; ++d) {
    if (output->data.int8[d] > output->data.int8[best]) best = d;
  }
  return best;
}

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
  int digit = classify(sample_digit);
  Serial.print("digit: ");
  Serial.print(digit);
  Serial.print(" (expected ");
  Serial.print(sample_digit_label);
  Serial.println(")");
}

void loop() {}

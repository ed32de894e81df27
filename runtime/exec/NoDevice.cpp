//===- NoDevice.cpp - createDevice() in builds without CUDA ---------------===//
#include "exec/Device.h"

namespace llamac {
namespace exec {

std::unique_ptr<Device> createDevice(const std::string &spec, bool, bool,
                                     std::string &error) {
  error = "--device " + spec +
          ": this llamac was built without the CUDA backend "
          "(configure with -DLLAMAC_ENABLE_CUDA=ON on a machine with the CUDA "
          "toolkit); use --device cpu";
  return nullptr;
}

} // namespace exec
} // namespace llamac

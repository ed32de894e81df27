//===- NoDevice.cpp - createDevice() in builds without CUDA ---------------===//
#include "exec/Device.h"

#include "comm/Comm.h"

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

std::unique_ptr<comm::Comm> createLaunchComm(const comm::EnvLaunch &,
                                             const std::string &,
                                             std::string &error) {
  error = "a launch without mpirun (LLAMAC_WORLD_SIZE / WORLD_SIZE) connects "
          "GPUs through NCCL, but this llamac was built without the CUDA "
          "backend; launch CPU jobs of several ranks with mpirun";
  return nullptr;
}

} // namespace exec
} // namespace llamac

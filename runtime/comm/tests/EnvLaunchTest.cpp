//===- EnvLaunchTest.cpp - comm::readEnvLaunch ----------------------------===//
#include "comm/Comm.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

using namespace llamac::comm;

namespace {

/// Sets the launch variables for one test and restores them after.
class Env {
public:
  explicit Env(const std::map<std::string, std::string> &vars) {
    for (const char *name :
         {"LLAMAC_WORLD_SIZE", "LLAMAC_RANK", "LLAMAC_LOCAL_RANK", "WORLD_SIZE",
          "RANK", "LOCAL_RANK", "NCCL_COMM_ID", "OMPI_COMM_WORLD_SIZE",
          "PMIX_RANK"}) {
      if (const char *v = std::getenv(name))
        saved_[name] = v;
      unsetenv(name);
    }
    for (const auto &[name, value] : vars)
      setenv(name.c_str(), value.c_str(), 1);
  }
  ~Env() {
    for (const char *name :
         {"LLAMAC_WORLD_SIZE", "LLAMAC_RANK", "LLAMAC_LOCAL_RANK", "WORLD_SIZE",
          "RANK", "LOCAL_RANK", "NCCL_COMM_ID", "OMPI_COMM_WORLD_SIZE",
          "PMIX_RANK"})
      unsetenv(name);
    for (const auto &[name, value] : saved_)
      setenv(name.c_str(), value.c_str(), 1);
  }

private:
  std::map<std::string, std::string> saved_;
};

TEST(EnvLaunch, TorchrunVariables) {
  Env env({{"WORLD_SIZE", "8"}, {"RANK", "5"}, {"LOCAL_RANK", "1"},
           {"NCCL_COMM_ID", "node0:29500"}});
  ASSERT_TRUE(envLaunchRequested());
  EnvLaunch launch;
  std::string error;
  ASSERT_TRUE(readEnvLaunch(launch, error)) << error;
  EXPECT_EQ(launch.rank, 5);
  EXPECT_EQ(launch.size, 8);
  EXPECT_EQ(launch.localRank, 1);
  EXPECT_EQ(launch.commId, "node0:29500");
}

TEST(EnvLaunch, LlamacVariablesWinAndLocalRankDefaultsToRank) {
  Env env({{"LLAMAC_WORLD_SIZE", "2"}, {"LLAMAC_RANK", "1"},
           {"WORLD_SIZE", "8"}, {"RANK", "5"},
           {"NCCL_COMM_ID", "10.0.0.1:4000"}});
  EnvLaunch launch;
  std::string error;
  ASSERT_TRUE(readEnvLaunch(launch, error)) << error;
  EXPECT_EQ(launch.rank, 1);
  EXPECT_EQ(launch.size, 2);
  EXPECT_EQ(launch.localRank, 1);
}

TEST(EnvLaunch, NotRequestedUnderMpirunOrWithoutAWorldSize) {
  {
    Env env({});
    EXPECT_FALSE(envLaunchRequested());
  }
  {
    // mpirun's own processes may carry WORLD_SIZE; mpirun wins.
    Env env({{"WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    EXPECT_FALSE(envLaunchRequested());
  }
  {
    // LLAMAC_WORLD_SIZE asks for it under any launcher.
    Env env({{"LLAMAC_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    EXPECT_TRUE(envLaunchRequested());
  }
}

TEST(EnvLaunch, BadValuesNameTheVariable) {
  EnvLaunch launch;
  std::string error;
  {
    Env env({{"LLAMAC_WORLD_SIZE", "0"}, {"LLAMAC_RANK", "0"},
             {"NCCL_COMM_ID", "h:1"}});
    EXPECT_FALSE(readEnvLaunch(launch, error));
    EXPECT_EQ(error, "LLAMAC_WORLD_SIZE=0: expected at least 1");
  }
  {
    Env env({{"LLAMAC_WORLD_SIZE", "4"}, {"LLAMAC_RANK", "-1"},
             {"NCCL_COMM_ID", "h:1"}});
    EXPECT_FALSE(readEnvLaunch(launch, error));
    EXPECT_EQ(error, "LLAMAC_RANK='-1': expected a non-negative integer");
  }
  {
    Env env({{"LLAMAC_WORLD_SIZE", "4"}, {"LLAMAC_RANK", "0"},
             {"LOCAL_RANK", "x"}, {"NCCL_COMM_ID", "h:1"}});
    EXPECT_FALSE(readEnvLaunch(launch, error));
    EXPECT_EQ(error, "LOCAL_RANK='x': expected a non-negative integer");
  }
  {
    Env env({{"LLAMAC_WORLD_SIZE", "4"}, {"LLAMAC_RANK", "0"},
             {"NCCL_COMM_ID", "nohostport"}});
    EXPECT_FALSE(readEnvLaunch(launch, error));
    EXPECT_NE(error.find("needs NCCL_COMM_ID=host:port"), std::string::npos)
        << error;
    EXPECT_NE(error.find("got 'nohostport'"), std::string::npos) << error;
  }
}

} // namespace

//===- DataCommands.cpp - llamac tokenizer/data subcommands ---------------===//
#include "DataCommands.h"

#include "data/Tokenizer.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

using namespace llamac;

namespace {

/// The flags of every data command, filled in by CLI11.
struct DataOptions {
  CLI::App *tokenizerTrain = nullptr;
  CLI::App *dataPrepare = nullptr;
  CLI::App *dataInfo = nullptr;

  std::vector<std::string> textFiles;
  int vocabSize = 0;
  std::string output;
  std::string tokenizer;
  std::string infoFile;
  bool verbose = false;
  bool quiet = false;
};

DataOptions &options() {
  static DataOptions opts;
  return opts;
}

int fail(const char *command, const std::string &message) {
  std::cerr << "llamac " << command << ": error: " << message << "\n";
  return 1;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

int runTokenizerTrain(const DataOptions &o) {
  auto start = std::chrono::steady_clock::now();
  std::string error;
  if (!data::trainTokenizer(o.textFiles, o.vocabSize, o.output, error,
                            o.verbose))
    return fail("tokenizer train", error);
  if (!o.quiet)
    std::printf("wrote %s: BPE tokenizer, vocab size %d (%.2f s)\n",
                o.output.c_str(), o.vocabSize, secondsSince(start));
  return 0;
}

int runDataPrepare(const DataOptions &o) {
  auto start = std::chrono::steady_clock::now();
  std::string error;
  uint64_t numTokens = 0, numDocs = 0;
  if (!data::prepareData(o.tokenizer, o.textFiles, o.output, !o.quiet, error,
                         &numTokens, &numDocs))
    return fail("data prepare", error);
  if (!o.quiet)
    std::printf("wrote %s: %llu tokens, %llu document%s (%.2f s)\n",
                o.output.c_str(), static_cast<unsigned long long>(numTokens),
                static_cast<unsigned long long>(numDocs),
                numDocs == 1 ? "" : "s", secondsSince(start));
  return 0;
}

int runDataInfo(const DataOptions &o) {
  std::string report, error;
  if (!data::dataInfo(o.infoFile, report, error))
    return fail("data info", error);
  std::fputs(report.c_str(), stdout);
  return 0;
}

} // namespace

void llamac::addDataCommands(CLI::App &app) {
  DataOptions &o = options();

  CLI::App *tokenizer =
      app.add_subcommand("tokenizer", "Train a SentencePiece tokenizer");
  tokenizer->require_subcommand(1);
  o.tokenizerTrain = tokenizer->add_subcommand(
      "train", "Train a LLaMA-style byte-fallback BPE tokenizer on text files "
               "(writes the -o model and a .vocab listing beside it)");
  o.tokenizerTrain
      ->add_option("text", o.textFiles, "UTF-8 text files to train on")
      ->required();
  o.tokenizerTrain
      ->add_option("--vocab-size", o.vocabSize,
                   "Number of pieces, >= " +
                       std::to_string(data::kMinVocabSize) + " (LLaMA: 32000)")
      ->required();
  o.tokenizerTrain->add_option("-o,--output", o.output, "Output .model file")
      ->required();
  o.tokenizerTrain->add_flag("-v,--verbose", o.verbose,
                             "Show SentencePiece's training log");
  o.tokenizerTrain->add_flag("-q,--quiet", o.quiet, "Print nothing on success");

  CLI::App *dataCmd =
      app.add_subcommand("data", "Prepare and inspect token files");
  dataCmd->require_subcommand(1);
  o.dataPrepare = dataCmd->add_subcommand(
      "prepare", "Encode text files into a token file: each file is one "
                 "document, BOS + ids + EOS");
  o.dataPrepare
      ->add_option("--tokenizer", o.tokenizer,
                   "SentencePiece .model (from `llamac tokenizer train`)")
      ->required();
  o.dataPrepare->add_option("text", o.textFiles, "UTF-8 text files, in order")
      ->required();
  o.dataPrepare->add_option("-o,--output", o.output, "Output .tok file")
      ->required();
  o.dataPrepare->add_flag("-q,--quiet", o.quiet, "No progress and no summary");

  o.dataInfo =
      dataCmd->add_subcommand("info", "Validate a token file and print "
                                      "its header and id range");
  o.dataInfo->add_option("file", o.infoFile, "Token file (.tok)")->required();
}

bool llamac::runDataCommands(int &exitCode) {
  const DataOptions &o = options();
  if (o.tokenizerTrain && o.tokenizerTrain->parsed())
    exitCode = runTokenizerTrain(o);
  else if (o.dataPrepare && o.dataPrepare->parsed())
    exitCode = runDataPrepare(o);
  else if (o.dataInfo && o.dataInfo->parsed())
    exitCode = runDataInfo(o);
  else
    return false;
  return true;
}

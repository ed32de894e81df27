//===- Tokenizer.h - SentencePiece tokenizer, data preparation -*- C++ -*-===//
//
// The text side of training data: a LLaMA-style byte-fallback BPE tokenizer
// (SentencePiece), and the conversion of text files into a token file
// (docs/token-format.md) that `llamac run/train --data` reads.
//
//   trainTokenizer  text files -> tok.model (+ tok.vocab)
//   Tokenizer       tok.model: encode / decode
//   prepareData     tok.model + text files -> data.tok
//   dataInfo        data.tok -> a human-readable summary
//
// Documents: each input FILE is one document. Its ids are
// `BOS, encode(whole file), EOS`, and the documents follow one another in
// the order of the files given (DESIGN.md A3: the stream is then read in
// order, so sequences may span documents, as in LLaMA pre-training).
//
// Text must be UTF-8: a file with an invalid UTF-8 sequence is rejected
// (with its line number) rather than silently turned into U+FFFD.
//
// Errors: functions return false and set `error` to one line that names the
// file or value and what was expected (DESIGN.md A7); a failed call leaves
// no output file behind. Nothing throws: the library is also linked into
// -fno-exceptions tools.
//
// Equivalent to: `spm_train` with LLaMA's options + `sp.encode` per
// document with BOS/EOS, as in Meta's LLaMA data pipeline.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_DATA_TOKENIZER_H
#define LLAMAC_RUNTIME_DATA_TOKENIZER_H

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
} // namespace sentencepiece

namespace llamac {
namespace data {

/// Smallest vocabulary trainTokenizer accepts: 3 special pieces (unk, bos,
/// eos) + 256 byte-fallback pieces. A corpus also needs one piece per
/// distinct character it covers, so real minimums are higher (about 330 for
/// English text).
constexpr int kMinVocabSize = 259;

/// SentencePiece trains on lines: at most this many non-empty lines (the
/// first ones, in file order) are used, and longer lines are skipped.
constexpr uint64_t kMaxTrainingLines = 5000000;
constexpr size_t kMaxTrainingLineBytes = 4192;

/// Trains a BPE tokenizer like LLaMA's on `textFiles` and writes it to
/// `outModel`, plus a readable `piece<TAB>score` list next to it
/// (`x.model` -> `x.vocab`, any other name -> `name.vocab`).
///
/// Options: model_type=bpe, byte_fallback, split_digits, identity
/// normalization (text is not altered), add_dummy_prefix, whitespace kept
/// as is, unk/bos/eos = 0/1/2, no pad, character_coverage 0.9995.
/// Deterministic: the same files and vocab size give the same bytes.
///
/// Both files are written atomically (temporary name, fsync, rename).
/// Fails when a file is missing or not UTF-8 text, the corpus holds no text
/// ("empty corpus"), vocabSize < kMinVocabSize, or vocabSize does not suit
/// the corpus (too small for its characters, too large for its text).
/// `verbose` lets SentencePiece print its training log on stderr.
bool trainTokenizer(const std::vector<std::string> &textFiles, int vocabSize,
                    const std::string &outModel, std::string &error,
                    bool verbose = false);

/// A loaded SentencePiece model. Movable, not copyable.
class Tokenizer {
public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  /// Loads a `.model` file; "<path>: not a SentencePiece model" when the
  /// file is something else.
  bool load(const std::string &path, std::string &error);
  bool isLoaded() const { return sp_ != nullptr; }

  /// Ids of `text` as one whole text (a dummy-prefix space is added before
  /// it, as SentencePiece does); no BOS/EOS. Precondition: isLoaded().
  /// Invalid UTF-8 becomes U+FFFD (prepareData rejects such input first).
  std::vector<int> encode(std::string_view text) const;
  /// Text of `ids`; decode(encode(x)) == x for valid UTF-8 `x` with a
  /// byte-fallback model. BOS/EOS decode to nothing; a list with an id
  /// outside [0, vocabSize()) decodes to "". Precondition: isLoaded().
  std::string decode(const std::vector<int> &ids) const;

  /// Ids of `text` as it is encoded inside a larger text, right after a
  /// '\n': for a text A + B where A ends with '\n',
  ///   encode(A + B) == encode(A) ++ encodeContinuation(B).
  /// This lets a large document be encoded a chunk of lines at a time.
  /// Precondition: splitsAtNewlines() (no piece contains '\n', true of
  /// every model trainTokenizer makes, since it trains on lines).
  std::vector<int> encodeContinuation(std::string_view text) const;
  bool splitsAtNewlines() const { return splitsAtNewlines_; }

  int vocabSize() const { return vocabSize_; }
  int bosId() const { return bosId_; } ///< -1 when the model has none.
  int eosId() const { return eosId_; } ///< -1 when the model has none.
  const std::string &path() const { return path_; }

private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  std::vector<int> newlinePrefix_; ///< encode("\n").
  int vocabSize_ = 0;
  int bosId_ = -1;
  int eosId_ = -1;
  bool splitsAtNewlines_ = false;
};

/// Encodes `textFiles` with the tokenizer at `tokenizerModel` into the
/// token file `outTokFile` (written atomically with
/// vocab_size = the tokenizer's vocabulary size): per file, BOS, its ids,
/// EOS; an empty file adds nothing. Text is read and encoded a chunk of
/// whole lines (about 16 KiB) at a time, so memory holds the output ids
/// (4 bytes per token) plus one chunk; a single line is encoded whole.
///
/// `showProgress` prints bytes read / total and a percentage on stderr when
/// the input is larger than 8 MiB or stderr is a terminal. `numTokens` and
/// `numDocs`, when given, receive the totals written.
///
/// Fails, leaving no output, when the model cannot be loaded or lacks
/// BOS/EOS, a file is missing or not UTF-8 text, or every file is empty
/// ("empty corpus").
bool prepareData(const std::string &tokenizerModel,
                 const std::vector<std::string> &textFiles,
                 const std::string &outTokFile, bool showProgress,
                 std::string &error, uint64_t *numTokens = nullptr,
                 uint64_t *numDocs = nullptr);

/// Validates the token file at `path` (io::TokenFile) and describes it in
/// `report`, one `name: value` per line: path, magic, version,
/// bytes_per_token, vocab_size, count, file_size, min_id, max_id (the last
/// two omitted when count is 0).
bool dataInfo(const std::string &path, std::string &report, std::string &error);

} // namespace data
} // namespace llamac

#endif // LLAMAC_RUNTIME_DATA_TOKENIZER_H

//===- Tokenizer.cpp - SentencePiece tokenizer and data preparation -------===//

#include "data/Tokenizer.h"

#include "io/FileUtil.h"
#include "io/TokenFile.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <unordered_map>

#include <sys/stat.h>
#include <unistd.h>

namespace llamac {
namespace data {

namespace {

/// Text is read and encoded in chunks of whole lines of about this size:
/// SentencePiece encodes small pieces of text about twice as fast as large
/// ones (2.3 MB/s at 16 KiB vs 1.1 MB/s at 1 MiB, vocab 512, one core).
constexpr size_t kChunkBytes = size_t(16) << 10;
/// Progress is always shown for inputs larger than this (when asked for).
constexpr uint64_t kProgressMinBytes = uint64_t(8) << 20;

//===----------------------------------------------------------------------===//
// Text input
//===----------------------------------------------------------------------===//

/// Offset of the first byte of `s` that does not start (or continue) a
/// well-formed UTF-8 sequence: no overlong forms, surrogates or code points
/// above U+10FFFF. `s.size()` when all of `s` is valid.
size_t findInvalidUtf8(std::string_view s) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; // Allowed range of the 2nd byte.
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0)
        lo = 0xa0; // Overlong.
      else if (c == 0xed)
        hi = 0x9f; // Surrogates.
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0)
        lo = 0x90; // Overlong.
      else if (c == 0xf4)
        hi = 0x8f; // Above U+10FFFF.
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi)
      return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xc0) != 0x80)
        return i;
    i += len;
  }
  return n;
}

/// Checks that `path` names a readable regular file; sets its size.
bool statTextFile(const std::string &path, uint64_t &size, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = path + ": cannot open text file: " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    error = path + ": is a directory: expected a text file";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file: expected a text file";
    return false;
  }
  size = static_cast<uint64_t>(st.st_size);
  return true;
}

bool statTextFiles(const std::vector<std::string> &files, uint64_t &total,
                   std::string &error) {
  if (files.empty()) {
    error = "empty corpus: no text files given";
    return false;
  }
  total = 0;
  for (const std::string &path : files) {
    uint64_t size;
    if (!statTextFile(path, size, error))
      return false;
    total += size;
  }
  return true;
}

/// Checks, before any long work, that `path` can be created: its directory
/// exists and is writable.
bool checkOutputPath(const std::string &path, std::string &error) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "."
                    : slash == 0               ? "/"
                                               : path.substr(0, slash);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error =
        path + ": cannot write output: directory " + dir + " does not exist";
    return false;
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    error =
        path + ": cannot write output: directory " + dir + " is not writable";
    return false;
  }
  return true;
}

/// Reads a text file a chunk of whole lines at a time and checks that it
/// is UTF-8. Only the last chunk of a file may lack a final '\n'; a line
/// longer than kChunkBytes is returned whole, in one (larger) chunk.
class TextChunkReader {
public:
  ~TextChunkReader() { close(); }

  bool open(const std::string &path, std::string &error) {
    close();
    path_ = path;
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) {
      error = path + ": cannot open text file: " + std::strerror(errno);
      return false;
    }
    buffer_.clear();
    line_ = 1;
    eof_ = false;
    return true;
  }

  void close() {
    if (file_)
      std::fclose(file_);
    file_ = nullptr;
  }

  /// Sets `chunk` to the next chunk; false at the end of the file (with
  /// `error` empty) or on an error.
  bool next(std::string &chunk, std::string &error) {
    error.clear();
    size_t scanned = 0; // buffer_[0, scanned) holds no '\n'.
    while (true) {
      if (buffer_.size() >= kChunkBytes || eof_) {
        // The last '\n', looked for only where none was seen before (so
        // that a very long line is scanned once).
        size_t cut = std::string_view(buffer_).substr(scanned).rfind('\n');
        if (cut != std::string::npos) {
          cut += scanned;
          chunk.assign(buffer_, 0, cut + 1);
          buffer_.erase(0, cut + 1);
          return check(chunk, error);
        }
        if (eof_) {
          if (buffer_.empty())
            return false;
          chunk.swap(buffer_);
          buffer_.clear();
          return check(chunk, error);
        }
        scanned = buffer_.size(); // A long line: read on.
      }
      size_t old = buffer_.size();
      buffer_.resize(old + kChunkBytes);
      size_t got = std::fread(&buffer_[old], 1, kChunkBytes, file_);
      buffer_.resize(old + got);
      bytesRead_ += got;
      if (got < kChunkBytes) {
        if (std::ferror(file_)) {
          error = path_ + ": cannot read text file: " + std::strerror(errno);
          return false;
        }
        eof_ = true;
      }
    }
  }

  /// Bytes read so far over all files opened by this reader.
  uint64_t bytesRead() const { return bytesRead_; }

private:
  /// Validates `chunk` as UTF-8 and advances the line count.
  bool check(const std::string &chunk, std::string &error) {
    size_t bad = findInvalidUtf8(chunk);
    if (bad != chunk.size()) {
      uint64_t line =
          line_ + std::count(chunk.begin(), chunk.begin() + bad, '\n');
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x",
                    static_cast<unsigned char>(chunk[bad]));
      error = path_ + ":" + std::to_string(line) + ": invalid UTF-8 byte " +
              hex + ": expected UTF-8 text";
      return false;
    }
    line_ += std::count(chunk.begin(), chunk.end(), '\n');
    return true;
  }

  std::string path_;
  std::FILE *file_ = nullptr;
  std::string buffer_;
  uint64_t line_ = 1; ///< Line number of buffer_[0].
  uint64_t bytesRead_ = 0;
  bool eof_ = false;
};

//===----------------------------------------------------------------------===//
// Training
//===----------------------------------------------------------------------===//

/// Feeds SentencePiece the non-empty lines of the files, in order, up to
/// kMaxTrainingLines; lines longer than kMaxTrainingLineBytes are skipped
/// (SentencePiece would skip them too, with a log line each).
class LineIterator : public sentencepiece::SentenceIterator {
public:
  explicit LineIterator(const std::vector<std::string> &files) : files_(files) {
    advance();
  }

  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string &value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (error_.empty())
      return sentencepiece::util::Status();
    return sentencepiece::util::Status(
        sentencepiece::util::StatusCode::kInvalidArgument, error_);
  }

  const std::string &error() const { return error_; }
  uint64_t linesUsed() const { return linesUsed_; }
  uint64_t linesTooLong() const { return linesTooLong_; }

private:
  /// Moves to the next usable line, or sets done_.
  void advance() {
    while (!done_) {
      if (linesUsed_ == kMaxTrainingLines) {
        done_ = true;
        return;
      }
      if (pos_ < chunk_.size()) {
        size_t end = chunk_.find('\n', pos_);
        if (end == std::string::npos)
          end = chunk_.size();
        size_t begin = pos_;
        pos_ = end + 1;
        if (end == begin)
          continue;
        if (end - begin > kMaxTrainingLineBytes) {
          ++linesTooLong_;
          continue;
        }
        value_.assign(chunk_, begin, end - begin);
        ++linesUsed_;
        return;
      }
      // Next chunk, or next file.
      chunk_.clear();
      pos_ = 0;
      if (open_ && reader_.next(chunk_, error_))
        continue;
      if (!error_.empty()) {
        done_ = true;
        return;
      }
      if (fileIndex_ == files_.size()) {
        done_ = true;
        return;
      }
      open_ = reader_.open(files_[fileIndex_++], error_);
      if (!open_) {
        done_ = true;
        return;
      }
    }
  }

  const std::vector<std::string> &files_;
  size_t fileIndex_ = 0;
  TextChunkReader reader_;
  bool open_ = false;
  std::string chunk_;
  size_t pos_ = 0;
  std::string value_;
  std::string error_;
  uint64_t linesUsed_ = 0;
  uint64_t linesTooLong_ = 0;
  bool done_ = false;
};

/// The two integers after `marker` in `msg` ("... marker 300 vs 334").
bool parseTwoInts(const std::string &msg, const char *marker, long &a,
                  long &b) {
  size_t at = msg.find(marker);
  if (at == std::string::npos)
    return false;
  const char *p = msg.c_str() + at + std::strlen(marker);
  while (*p && (*p < '0' || *p > '9'))
    ++p;
  char *end;
  a = std::strtol(p, &end, 10);
  if (end == p)
    return false;
  p = end;
  while (*p && (*p < '0' || *p > '9'))
    ++p;
  b = std::strtol(p, &end, 10);
  return end != p;
}

/// One line for a failed SentencePiece training run.
std::string describeTrainingError(const std::string &msg, int vocabSize) {
  long a, b;
  std::string v = std::to_string(vocabSize);
  if (parseTwoInts(msg, "smaller than required_chars", a, b))
    return "vocab size " + v + " is too small for this corpus: its " +
           std::to_string(b - kMinVocabSize) +
           " most common characters, 256 byte pieces and 3 special pieces "
           "need at least " +
           std::to_string(b);
  if (parseTwoInts(msg, "Vocabulary size too high", a, b))
    return "vocab size " + v +
           " is too large for this corpus: it yields at most " +
           std::to_string(b) + " pieces; use a smaller vocab size or more text";
  std::string line = msg;
  std::replace(line.begin(), line.end(), '\n', ' ');
  return "SentencePiece training failed: " + line;
}

/// `x.model` -> `x.vocab`, anything else -> `name.vocab`.
std::string vocabPathFor(const std::string &model) {
  const std::string ext = ".model";
  if (model.size() > ext.size() &&
      model.compare(model.size() - ext.size(), ext.size(), ext) == 0)
    return model.substr(0, model.size() - ext.size()) + ".vocab";
  return model + ".vocab";
}

//===----------------------------------------------------------------------===//
// Progress
//===----------------------------------------------------------------------===//

/// "bytes read / total (percent)" on stderr: redrawn in place at most 5
/// times a second on a terminal, one line per 10% otherwise.
class Progress {
public:
  Progress(bool enabled, uint64_t total) : total_(total) {
    tty_ = ::isatty(STDERR_FILENO) != 0;
    enabled_ = enabled && total > 0 && (tty_ || total > kProgressMinBytes);
  }

  void update(uint64_t done) {
    if (!enabled_)
      return;
    done = std::min(done, total_);
    int percent = static_cast<int>(done * 100 / total_);
    auto now = std::chrono::steady_clock::now();
    if (shown_ && percent == lastPercent_)
      return; // Nothing new to say.
    if (shown_ && percent != 100 &&
        (tty_ ? now - last_ < std::chrono::milliseconds(200)
              : percent / 10 == lastPercent_ / 10))
      return;
    last_ = now;
    lastPercent_ = percent;
    shown_ = true;
    std::fprintf(stderr, "%sprepare: %.1f / %.1f MiB (%d%%)%s",
                 tty_ ? "\r" : "", done / 1048576.0, total_ / 1048576.0,
                 percent, tty_ ? "" : "\n");
    std::fflush(stderr);
  }

  /// Ends the in-place line on a terminal.
  void finish() {
    if (enabled_ && shown_ && tty_)
      std::fputc('\n', stderr);
    enabled_ = false;
  }

private:
  uint64_t total_;
  bool tty_ = false;
  bool enabled_ = false;
  bool shown_ = false;
  int lastPercent_ = -1;
  std::chrono::steady_clock::time_point last_;
};

} // namespace

//===----------------------------------------------------------------------===//
// trainTokenizer
//===----------------------------------------------------------------------===//

bool trainTokenizer(const std::vector<std::string> &textFiles, int vocabSize,
                    const std::string &outModel, std::string &error,
                    bool verbose) {
  // 1. Validate the arguments and that every file can be read.
  if (vocabSize < kMinVocabSize) {
    error = "vocab size " + std::to_string(vocabSize) +
            " is too small: expected >= " + std::to_string(kMinVocabSize) +
            " (256 byte pieces + unk, bos, eos)";
    return false;
  }
  uint64_t totalBytes;
  if (!statTextFiles(textFiles, totalBytes, error) ||
      !checkOutputPath(outModel, error))
    return false;

  // 2. Train, on lines streamed from the files. LLaMA's settings; with the
  //    input in file order, unshuffled and capped, the result is
  //    deterministic. No file is written: the model comes back serialized.
  const std::unordered_map<std::string, std::string> options = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocabSize)},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"character_coverage", "0.9995"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "true"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"num_threads", "2"},
      {"input_sentence_size", std::to_string(kMaxTrainingLines)},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(kMaxTrainingLineBytes)},
      {"minloglevel", verbose ? "0" : "2"},
  };
  LineIterator lines(textFiles);
  std::string serialized;
  sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(options, &lines, &serialized);
  if (!lines.error().empty()) {
    error = lines.error();
    return false;
  }
  if (lines.linesUsed() == 0) {
    if (lines.linesTooLong() > 0)
      error = "empty corpus: every line of the text files is longer than " +
              std::to_string(kMaxTrainingLineBytes) +
              " bytes, and the tokenizer trains on lines: expected text "
              "broken into lines";
    else
      error = "empty corpus: the text files hold no text";
    return false;
  }
  if (!status.ok()) {
    error = describeTrainingError(status.message(), vocabSize);
    return false;
  }

  // 3. Reload the model to check it and to list its pieces.
  sentencepiece::SentencePieceProcessor sp;
  status = sp.LoadFromSerializedProto(serialized);
  if (!status.ok()) {
    error = std::string("SentencePiece produced an unreadable model: ") +
            status.message();
    return false;
  }
  std::ostringstream vocab;
  for (int id = 0; id < sp.GetPieceSize(); ++id)
    vocab << sp.IdToPiece(id) << '\t' << sp.GetScore(id) << '\n';

  // 4. Write `.vocab`, then `.model` (the commit point), each atomically.
  const std::string vocabPath = vocabPathFor(outModel);
  if (!io::detail::writeFileAtomic(vocabPath, vocab.str(), error))
    return false;
  if (!io::detail::writeFileAtomic(outModel, serialized, error)) {
    std::remove(vocabPath.c_str());
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Tokenizer
//===----------------------------------------------------------------------===//

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;

bool Tokenizer::load(const std::string &path, std::string &error) {
  sp_.reset();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = path + ": cannot open tokenizer model: " + std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    // SentencePiece's own reader would throw on a directory.
    error = path + ": not a regular file: expected a SentencePiece model";
    return false;
  }
  std::string bytes;
  if (!io::detail::readFile(path, bytes, error))
    return false;
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  sentencepiece::util::Status status = sp->LoadFromSerializedProto(bytes);
  if (!status.ok() || sp->GetPieceSize() <= 0) {
    error = path + ": not a SentencePiece model";
    // A parse failure says nothing more useful; a model that parses but
    // is unusable does.
    std::string msg = status.ok() ? "it has no pieces" : status.message();
    if (msg.find("ParseFrom") == std::string::npos)
      error += " (" + msg + ")";
    return false;
  }

  path_ = path;
  vocabSize_ = sp->GetPieceSize();
  bosId_ = sp->bos_id();
  eosId_ = sp->eos_id();
  // Chunked encoding needs '\n' to be a token boundary that no piece
  // crosses, and to map to the byte piece <0x0A> wherever it appears.
  splitsAtNewlines_ = sp->IsByte(sp->PieceToId("<0x0A>"));
  for (int id = 0; id < vocabSize_ && splitsAtNewlines_; ++id)
    if (sp->IdToPiece(id).find('\n') != std::string::npos)
      splitsAtNewlines_ = false;
  sp_ = std::move(sp);
  newlinePrefix_ = encode("\n");
  return true;
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  sp_->Encode(absl::string_view(text.data(), text.size()), &ids)
      .IgnoreError(); // Fails only when no model is loaded.
  return ids;
}

std::string Tokenizer::decode(const std::vector<int> &ids) const {
  std::string text;
  sp_->Decode(ids, &text).IgnoreError(); // Fails only on a bad id: "".
  return text;
}

std::vector<int> Tokenizer::encodeContinuation(std::string_view text) const {
  // encode("\n" + text) is encode("\n") followed by the ids of `text` as
  // they are after a '\n': the dummy prefix attaches to the '\n' part.
  std::string withNewline;
  withNewline.reserve(text.size() + 1);
  withNewline += '\n';
  withNewline.append(text.data(), text.size());
  std::vector<int> ids = encode(withNewline);
  ids.erase(ids.begin(),
            ids.begin() + std::min(ids.size(), newlinePrefix_.size()));
  return ids;
}

//===----------------------------------------------------------------------===//
// prepareData
//===----------------------------------------------------------------------===//

bool prepareData(const std::string &tokenizerModel,
                 const std::vector<std::string> &textFiles,
                 const std::string &outTokFile, bool showProgress,
                 std::string &error, uint64_t *numTokens, uint64_t *numDocs) {
  // 1. The tokenizer, and the files up front (a typo in the last file name
  //    should not cost an hour of encoding).
  Tokenizer tok;
  if (!tok.load(tokenizerModel, error))
    return false;
  if (tok.bosId() < 0 || tok.eosId() < 0) {
    error = tokenizerModel + ": tokenizer has no " +
            (tok.bosId() < 0 ? "BOS" : "EOS") +
            " piece: expected a model trained with bos_id and eos_id >= 0";
    return false;
  }
  uint64_t totalBytes;
  if (!statTextFiles(textFiles, totalBytes, error) ||
      !checkOutputPath(outTokFile, error))
    return false;

  // 2. Encode file by file, a chunk of lines at a time: BOS, ids, EOS.
  std::vector<uint32_t> tokens;
  uint64_t docs = 0;
  Progress progress(showProgress, totalBytes);
  TextChunkReader reader;
  std::string chunk, whole;
  for (const std::string &path : textFiles) {
    if (!reader.open(path, error))
      return false;
    bool first = true;
    whole.clear();
    while (reader.next(chunk, error)) {
      if (!tok.splitsAtNewlines()) {
        whole += chunk; // This model must see the document whole.
      } else {
        if (first)
          tokens.push_back(static_cast<uint32_t>(tok.bosId()));
        std::vector<int> ids =
            first ? tok.encode(chunk) : tok.encodeContinuation(chunk);
        tokens.insert(tokens.end(), ids.begin(), ids.end());
      }
      first = false;
      progress.update(reader.bytesRead());
    }
    if (!error.empty()) {
      progress.finish();
      return false;
    }
    if (first)
      continue; // An empty file is no document.
    if (!tok.splitsAtNewlines()) {
      tokens.push_back(static_cast<uint32_t>(tok.bosId()));
      std::vector<int> ids = tok.encode(whole);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    tokens.push_back(static_cast<uint32_t>(tok.eosId()));
    ++docs;
  }
  progress.update(totalBytes);
  progress.finish();
  if (docs == 0) {
    error = "empty corpus: the " + std::to_string(textFiles.size()) +
            " text file(s) hold no text";
    return false;
  }

  // 3. Write the token file (atomically: nothing is left on failure).
  if (!io::writeTokenFile(outTokFile, tokens,
                          static_cast<uint64_t>(tok.vocabSize()), error))
    return false;
  if (numTokens)
    *numTokens = tokens.size();
  if (numDocs)
    *numDocs = docs;
  return true;
}

//===----------------------------------------------------------------------===//
// dataInfo
//===----------------------------------------------------------------------===//

bool dataInfo(const std::string &path, std::string &report,
              std::string &error) {
  io::TokenFile file;
  if (!file.open(path, error))
    return false;
  std::ostringstream os;
  os << "file: " << path << '\n'
     << "magic: " << std::string(io::kTokenFileMagic, 8) << '\n'
     << "version: " << io::kTokenFileVersion << '\n'
     << "bytes_per_token: " << file.bytesPerToken() << '\n'
     << "vocab_size: " << file.vocabSize() << '\n'
     << "count: " << file.count() << '\n'
     << "file_size: "
     << io::kTokenFileHeaderBytes + file.count() * file.bytesPerToken() << '\n';
  if (file.count() > 0) {
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint64_t i = 0; i < file.count(); ++i) {
      uint32_t id = file.at(i);
      lo = std::min(lo, id);
      hi = std::max(hi, id);
    }
    os << "min_id: " << lo << '\n' << "max_id: " << hi << '\n';
  }
  report = os.str();
  return true;
}

} // namespace data
} // namespace llamac

//===- Pipeline.cpp - Pipeline schedule: report and picture ---------------===//
#include "Pipeline.h"
#include "Report.h"

#include "dialects/llm/LlmOps.h"
#include "dialects/lrt/LrtDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/ToolOutputFile.h"

#include <algorithm>
#include <map>

using namespace mlir;
using namespace llamac;

/// The stage functions in stage order (empty when there are none).
static std::vector<func::FuncOp> stageFuncs(ModuleOp module) {
  std::vector<func::FuncOp> stages;
  for (auto f : module.getOps<func::FuncOp>())
    if (auto s = f->getAttrOfType<IntegerAttr>(llm::kStageAttr)) {
      if (stages.size() <= size_t(s.getInt()))
        stages.resize(s.getInt() + 1);
      stages[s.getInt()] = f;
    }
  return stages;
}

/// Start times of every task: a stage runs its tasks in order, each when
/// the stage is free and its input has arrived (transfers take no time).
static void simulate(PipelineSummary &p) {
  const int P = int(p.stages.size());
  std::map<std::tuple<int, int, bool>, double> end; // (stage, mb, bwd)
  std::vector<size_t> next(P, 0);
  std::vector<double> free(P, 0);
  size_t left = 0;
  for (auto &s : p.stages)
    left += s.tasks.size();
  while (left > 0) {
    bool progress = false;
    for (int s = 0; s < P; ++s) {
      while (next[s] < p.stages[s].tasks.size()) {
        PipelineTask &t = p.stages[s].tasks[next[s]];
        double ready = free[s];
        int from = t.backward ? s + 1 : s - 1;
        if (from >= 0 && from < P) {
          auto it = end.find({from, t.microbatch, t.backward});
          if (it == end.end())
            break; // its input is not there yet
          ready = std::max(ready, it->second);
        }
        t.start = ready;
        free[s] = ready + t.seconds;
        end[{s, t.microbatch, t.backward}] = free[s];
        ++next[s], --left, progress = true;
      }
    }
    if (!progress)
      break; // a schedule that waits for itself (cannot happen for ours)
  }
  double busy = 0;
  p.makespan = 0;
  for (int s = 0; s < P; ++s) {
    p.makespan = std::max(p.makespan, free[s]);
    for (const PipelineTask &t : p.stages[s].tasks)
      busy += t.seconds;
  }
  p.bubble = p.makespan > 0 ? 1.0 - busy / (P * p.makespan) : 0;
}

bool llamac::summarizePipeline(ModuleOp module, PipelineSummary &out) {
  auto attr = module->getAttrOfType<DictionaryAttr>(llm::kPipelineAttr);
  std::vector<func::FuncOp> funcs = stageFuncs(module);
  if (!attr || funcs.empty())
    return false;
  out.schedule = attr.getAs<StringAttr>("schedule").getValue().str();
  out.microbatches = int(attr.getAs<IntegerAttr>("microbatches").getInt());
  int layers = int(attr.getAs<IntegerAttr>("layers").getInt());
  for (Attribute a : attr.getAs<ArrayAttr>("unit_seconds"))
    out.unitSeconds.push_back(cast<FloatAttr>(a).getValueAsDouble());
  ArrayRef<int64_t> firsts =
      attr.getAs<DenseI64ArrayAttr>("first_layers").asArrayRef();
  const int P = int(funcs.size());
  out.stages.assign(P, {});
  for (int s = 0; s < P; ++s) {
    PipelineStage &stage = out.stages[s];
    stage.firstLayer = int(firsts[s]);
    stage.lastLayer = s + 1 < P ? int(firsts[s + 1]) - 1 : layers - 1;
    stage.embedding = s == 0;
    stage.head = s == P - 1;
    // Tasks in order of their first op; each op's time to its task.
    std::map<std::pair<int, bool>, size_t> index;
    funcs[s].walk([&](Operation *op) {
      double t = llm::estimateSeconds(op);
      stage.stepSeconds += t;
      auto mb = op->getAttrOfType<IntegerAttr>(llm::kMicrobatchAttr);
      auto phase = op->getAttrOfType<StringAttr>(llm::kPhaseAttr);
      if (!mb || !phase)
        return;
      std::pair<int, bool> key{int(mb.getInt()),
                               phase.getValue() == "backward"};
      auto [it, fresh] = index.try_emplace(key, stage.tasks.size());
      if (fresh)
        stage.tasks.push_back({key.first, key.second, 0, 0});
      stage.tasks[it->second].seconds += t;
    });
  }
  simulate(out);
  return true;
}

void llamac::addPipelineMemory(ModuleOp module, PipelineSummary &summary) {
  std::vector<func::FuncOp> funcs = stageFuncs(module);
  for (size_t s = 0; s < funcs.size() && s < summary.stages.size(); ++s) {
    PipelineStage &stage = summary.stages[s];
    RankMemory m = rankMemory(funcs[s]);
    stage.params = m.params, stage.grads = m.grads;
    stage.moments = m.moments, stage.arena = m.arena;
  }
}

static std::string layersOf(const PipelineStage &s) {
  std::string text;
  if (s.embedding)
    text += "embedding + ";
  text += s.firstLayer == s.lastLayer
              ? "layer " + std::to_string(s.firstLayer)
              : "layers " + std::to_string(s.firstLayer) + "-" +
                    std::to_string(s.lastLayer);
  if (s.head)
    text += " + head";
  return text;
}

void llamac::printPipelineReport(const PipelineSummary &p,
                                 llvm::raw_ostream &os) {
  const int P = int(p.stages.size());
  os << "pipeline: " << P << " stages, schedule " << p.schedule << ", "
     << p.microbatches << " microbatches (cost model: roofline at "
        "100 TFLOP/s, 2 TB/s)\n";
  os << "  unit costs (us per step):";
  for (size_t u = 0; u < p.unitSeconds.size(); ++u)
    os << llvm::format(" %s=%.3f",
                       u == 0 ? "embedding"
                       : u + 1 == p.unitSeconds.size()
                           ? "head"
                           : ("layer" + std::to_string(u - 1)).c_str(),
                       p.unitSeconds[u] * 1e6);
  os << "\n";
  os << llvm::format("  %-5s %-30s %12s %12s %12s %12s %12s\n", "stage",
                     "units", "cost us", "params B", "grads B", "optim B",
                     "arena B");
  for (int s = 0; s < P; ++s) {
    const PipelineStage &st = p.stages[s];
    os << llvm::format("  %-5d %-30s %12.3f %12lld %12lld %12lld %12lld\n", s,
                       layersOf(st).c_str(), st.stepSeconds * 1e6,
                       static_cast<long long>(st.params),
                       static_cast<long long>(st.grads),
                       static_cast<long long>(st.moments),
                       static_cast<long long>(st.arena));
  }
  for (int s = 0; s < P; ++s) {
    os << "  stage " << s << " order:";
    for (const PipelineTask &t : p.stages[s].tasks)
      os << " " << (t.backward ? "B" : "F") << t.microbatch;
    os << "\n";
  }
  double ideal = double(P - 1) / double(p.microbatches + P - 1);
  os << llvm::format("  simulated step %.3f us, bubble %.1f%% (equal stages: "
                     "(pp-1)/(M+pp-1) = %.1f%%)\n",
                     p.makespan * 1e6, 100 * p.bubble, 100 * ideal);
}

bool llamac::writeScheduleSvg(const PipelineSummary &p,
                              const std::string &path, std::string &error) {
  const int P = int(p.stages.size());
  const double width = 1000, rowHeight = 36, left = 80, top = 40;
  const double scale = p.makespan > 0 ? width / p.makespan : 0;
  std::string svg;
  llvm::raw_string_ostream os(svg);
  os << llvm::format("<svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "width=\"%.0f\" height=\"%.0f\" "
                     "font-family=\"sans-serif\" font-size=\"11\">\n",
                     left + width + 20, top + rowHeight * P + 40);
  os << llvm::format("<text x=\"%.0f\" y=\"20\" font-size=\"13\">%s, %d "
                     "stages, %d microbatches: bubble %.1f%% (cost-model "
                     "times; F forward, B backward)</text>\n",
                     left, p.schedule.c_str(), P, p.microbatches,
                     100 * p.bubble);
  for (int s = 0; s < P; ++s) {
    double y = top + s * rowHeight;
    os << llvm::format("<text x=\"8\" y=\"%.1f\">stage %d</text>\n",
                       y + rowHeight / 2 + 4, s);
    for (const PipelineTask &t : p.stages[s].tasks) {
      double hue = 360.0 * t.microbatch / std::max(1, p.microbatches);
      double x = left + t.start * scale, w = std::max(1.0, t.seconds * scale);
      os << llvm::format(
          "<rect class=\"%s\" data-microbatch=\"%d\" x=\"%.2f\" y=\"%.1f\" "
          "width=\"%.2f\" height=\"%.1f\" fill=\"hsl(%.0f,70%%,%d%%)\" "
          "stroke=\"#333\" stroke-width=\"0.5\"/>\n",
          t.backward ? "backward" : "forward", t.microbatch, x, y + 4, w,
          rowHeight - 8, hue, t.backward ? 45 : 75);
      if (w > 18)
        os << llvm::format("<text x=\"%.2f\" y=\"%.1f\" "
                           "text-anchor=\"middle\">%s%d</text>\n",
                           x + w / 2, y + rowHeight / 2 + 4,
                           t.backward ? "B" : "F", t.microbatch);
    }
  }
  os << "</svg>\n";
  auto file = openOutputFile(path, &error);
  if (!file)
    return false;
  file->os() << svg;
  file->os().flush();
  if (file->os().has_error()) {
    error = "cannot write " + path;
    return false;
  }
  file->keep();
  return true;
}

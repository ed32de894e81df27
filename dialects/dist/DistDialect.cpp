//===- DistDialect.cpp - The dist sharding dialect ------------------------===//
#include "dialects/dist/DistDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace llamac::dist;

#include "dialects/dist/DistDialect.cpp.inc"
#include "dialects/dist/DistInterfaces.cpp.inc"

//===----------------------------------------------------------------------===//
// #dist.sharding: `<[{tp}, {}, {?}], partial = {tp}, p1>`
//===----------------------------------------------------------------------===//

static ParseResult parseAxisSet(AsmParser &parser,
                                SmallVectorImpl<int16_t> &axes, bool *open) {
  if (parser.parseLBrace())
    return failure();
  if (succeeded(parser.parseOptionalRBrace()))
    return success();
  do {
    if (open && succeeded(parser.parseOptionalQuestion())) {
      *open = true;
      continue;
    }
    SMLoc loc = parser.getCurrentLocation();
    std::string name;
    if (parser.parseKeywordOrString(&name))
      return failure();
    int16_t axis = axisIndex(name);
    if (axis < 0)
      return parser.emitError(loc, "unknown grid axis '")
             << name << "' (expected pp, dp or tp)";
    if (llvm::is_contained(axes, axis))
      return parser.emitError(loc, "grid axis '") << name << "' given twice";
    axes.push_back(axis);
  } while (succeeded(parser.parseOptionalComma()));
  return parser.parseRBrace();
}

static void printAxisSet(AsmPrinter &printer, ArrayRef<int16_t> axes,
                         bool open) {
  printer << '{';
  llvm::interleaveComma(axes, printer,
                        [&](int16_t a) { printer << axisName(a); });
  if (open)
    printer << (axes.empty() ? "?" : ", ?");
  printer << '}';
}

/// The part inside the angle brackets, shared by the attribute and
/// dist.constraint.
static ParseResult parseShardingBody(AsmParser &parser, ShardingAttr &attr) {
  MLIRContext *ctx = parser.getContext();
  SMLoc loc = parser.getCurrentLocation();
  SmallVector<DimShardingAttr> dims;
  SmallVector<int16_t> partial;
  int64_t priority = -1;
  if (parser.parseLess() || parser.parseLSquare())
    return failure();
  if (failed(parser.parseOptionalRSquare())) {
    do {
      SmallVector<int16_t> axes;
      bool open = false;
      if (parseAxisSet(parser, axes, &open))
        return failure();
      dims.push_back(DimShardingAttr::get(ctx, axes, open));
    } while (succeeded(parser.parseOptionalComma()));
    if (parser.parseRSquare())
      return failure();
  }
  while (succeeded(parser.parseOptionalComma())) {
    SMLoc at = parser.getCurrentLocation();
    std::string word;
    if (parser.parseKeywordOrString(&word))
      return failure();
    if (word == "partial") {
      if (parser.parseEqual() || parseAxisSet(parser, partial, nullptr))
        return failure();
    } else if (word.size() > 1 && word[0] == 'p' &&
               llvm::all_of(StringRef(word).drop_front(), [](char c) { return c >= '0' && c <= '9'; })) {
      priority = std::stoll(word.substr(1));
    } else {
      return parser.emitError(at, "expected 'partial = {...}' or a priority "
                                  "'pN', got '")
             << word << "'";
    }
  }
  if (parser.parseGreater())
    return failure();
  attr = ShardingAttr::getChecked(
      [&] { return parser.emitError(loc); }, ctx, dims, partial, priority);
  return success(static_cast<bool>(attr));
}

static void printShardingBody(AsmPrinter &printer, ShardingAttr attr) {
  printer << "<[";
  llvm::interleaveComma(attr.getDims(), printer, [&](DimShardingAttr d) {
    printAxisSet(printer, d.getAxes(), d.getOpen());
  });
  printer << ']';
  if (!attr.getPartial().empty()) {
    printer << ", partial = ";
    printAxisSet(printer, attr.getPartial(), false);
  }
  if (attr.getPriority() >= 0)
    printer << ", p" << attr.getPriority();
  printer << '>';
}

// The op assembly format's custom<ShardingBody> directive.
static ParseResult parseShardingBody(OpAsmParser &parser, ShardingAttr &attr) {
  return parseShardingBody(static_cast<AsmParser &>(parser), attr);
}
static void printShardingBody(OpAsmPrinter &printer, Operation *,
                              ShardingAttr attr) {
  printShardingBody(static_cast<AsmPrinter &>(printer), attr);
}

Attribute ShardingAttr::parse(AsmParser &parser, Type) {
  ShardingAttr attr;
  if (parseShardingBody(parser, attr))
    return {};
  return attr;
}

void ShardingAttr::print(AsmPrinter &printer) const {
  printShardingBody(printer, *this);
}

LogicalResult
ShardingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                     ArrayRef<DimShardingAttr> dims, ArrayRef<int16_t> partial,
                     int64_t priority) {
  SmallVector<int16_t> seen;
  auto check = [&](int16_t axis) -> LogicalResult {
    if (axis < 0 || axis > 2)
      return emitError() << "grid axis " << axis
                         << " is out of range (0 = pp, 1 = dp, 2 = tp)";
    if (llvm::is_contained(seen, axis))
      return emitError() << "grid axis '" << axisName(axis)
                         << "' is used twice in one sharding";
    seen.push_back(axis);
    return success();
  };
  for (DimShardingAttr d : dims)
    for (int16_t a : d.getAxes())
      if (failed(check(a)))
        return failure();
  for (int16_t a : partial)
    if (failed(check(a)))
      return failure();
  if (priority < -1)
    return emitError() << "priority must be >= 0, got " << priority;
  return success();
}

SmallVector<int16_t> ShardingAttr::shardedAxes() const {
  SmallVector<int16_t> axes;
  for (DimShardingAttr d : getDims())
    llvm::append_range(axes, d.getAxes());
  return axes;
}

bool ShardingAttr::isReplicated() const {
  return getPartial().empty() && shardedAxes().empty();
}

ShardingAttr ShardingAttr::withoutPartial() const {
  SmallVector<DimShardingAttr> dims;
  for (DimShardingAttr d : getDims())
    dims.push_back(DimShardingAttr::get(getContext(), d.getAxes(), false));
  return ShardingAttr::get(getContext(), dims, {}, -1);
}

ShardingAttr ShardingAttr::replicated(MLIRContext *ctx, unsigned rank) {
  SmallVector<SmallVector<int16_t>> dims(rank);
  return get(ctx, dims);
}

ShardingAttr ShardingAttr::get(MLIRContext *ctx,
                               ArrayRef<SmallVector<int16_t>> dims,
                               ArrayRef<int16_t> partial, int64_t priority) {
  SmallVector<DimShardingAttr> ds;
  for (const SmallVector<int16_t> &axes : dims)
    ds.push_back(DimShardingAttr::get(ctx, axes, false));
  return Base::get(ctx, ds, partial, priority);
}

//===----------------------------------------------------------------------===//
// dist.constraint
//===----------------------------------------------------------------------===//

LogicalResult ConstraintOp::verify() {
  auto type = cast<RankedTensorType>(getInput().getType());
  if (getSharding().getDims().size() != static_cast<size_t>(type.getRank()))
    return emitOpError("sharding has ")
           << getSharding().getDims().size() << " dimensions but the tensor "
           << type << " has rank " << type.getRank();
  if (!getSharding().getPartial().empty())
    return emitOpError("a constraint cannot ask for partial sums");
  return success();
}

LogicalResult BucketAllReduceOp::verify() {
  if (getInputs().empty())
    return emitOpError("needs at least one gradient");
  for (Value v : getInputs())
    if (!cast<RankedTensorType>(v.getType()).getElementType().isF32())
      return emitOpError("buckets hold fp32 gradients, got ") << v.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// dist.send / dist.recv
//===----------------------------------------------------------------------===//

/// A transfer's peer is another stage, and its tag fits the runtime's
/// message tags (MPI guarantees at least 32767).
static LogicalResult verifyTransfer(Operation *op, int64_t peer, int64_t tag) {
  if (peer < 0)
    return op->emitOpError("peer stage must be non-negative, got ") << peer;
  if (tag < 0 || tag >= kMaxTransferTag)
    return op->emitOpError("tag must be in [0, ")
           << kMaxTransferTag << "), got " << tag;
  return success();
}

LogicalResult SendOp::verify() { return verifyTransfer(*this, getPeer(), getTag()); }
LogicalResult RecvOp::verify() { return verifyTransfer(*this, getPeer(), getTag()); }

#define GET_ATTRDEF_CLASSES
#include "dialects/dist/DistAttrs.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/dist/DistOps.cpp.inc"

void DistDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/dist/DistAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/dist/DistOps.cpp.inc"
      >();
}

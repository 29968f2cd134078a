// BertNormalizer owns BERT's text normalisation and pre-tokenisation, written to match
// Hugging Face `tokenizers` (normalizers/bert.rs, pre_tokenizers/bert.rs) scalar for scalar:
// clean_text, CJK spacing, accent stripping (NFD, then drop Mn), per-scalar lowercasing, and the
// split into words on whitespace and punctuation.
import Foundation

/// The character classes BERT's normalizer and pre-tokenizer use, with `tokenizers`' definitions.
enum BertCharacterClass {
  /// Whether `value` lies in one of the inclusive ranges of `ranges` (`[lo0, hi0, lo1, ...]`).
  static func isInRanges(_ value: UInt32, _ ranges: [UInt32]) -> Bool {
    var low = 0
    var high = ranges.count / 2
    while low < high {
      let middle = (low + high) / 2
      if value > ranges[2 * middle + 1] {
        low = middle + 1
      } else if value < ranges[2 * middle] {
        high = middle
      } else {
        return true
      }
    }
    return false
  }

  /// Rust's `char::is_whitespace` (the Unicode White_Space property), which both the
  /// normalizer and the pre-tokenizer use. Tab, line feed and carriage return are included.
  static func isWhitespace(_ value: UInt32) -> Bool {
    switch value {
    case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
      0x3000:
      return true
    default:
      return false
    }
  }

  /// clean_text's "control": Cc, Cf or Co in Unicode 9.0, except tab, line feed and carriage
  /// return. (So U+000B, U+000C and U+0085 are removed, not turned into spaces.)
  static func isControl(_ value: UInt32) -> Bool {
    if value == 0x09 || value == 0x0A || value == 0x0D { return false }
    if value < 0x20 || (0x7F...0x9F).contains(value) { return true }
    if value < 0xAD { return false }
    if (0xE000...0xF8FF).contains(value) || (0xF0000...0xFFFFD).contains(value)
      || (0x10_0000...0x10_FFFD).contains(value)
    {
      return true
    }
    return isInRanges(value, BertCharacterTables.format)
  }

  /// BertPreTokenizer's punctuation: ASCII 33–47, 58–64, 91–96, 123–126, or P* in Unicode 9.0.
  static func isPunctuation(_ value: UInt32) -> Bool {
    if value < 0x80 {
      return (33...47).contains(value) || (58...64).contains(value) || (91...96).contains(value)
        || (123...126).contains(value)
    }
    return isInRanges(value, BertCharacterTables.punctuation)
  }

  /// Mn in Unicode 9.0.
  static func isNonspacingMark(_ value: UInt32) -> Bool {
    value >= 0x300 && isInRanges(value, BertCharacterTables.nonspacingMark)
  }

  /// The CJK ideograph ranges `tokenizers` surrounds with spaces. Note 0x2B920, not the
  /// 0x2B820 of Google's original BERT: this follows `tokenizers`.
  static func isChineseCharacter(_ value: UInt32) -> Bool {
    switch value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
      0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
      return true
    default:
      return false
    }
  }

  /// Whether a scalar can change under canonical decomposition or reordering. Nothing below
  /// U+00C0 has a canonical decomposition or a non-zero combining class, so text made only of
  /// such scalars is already NFD and the Foundation call can be skipped.
  static func mayNeedDecomposition(_ value: UInt32) -> Bool { value >= 0xC0 }
}

/// BERT's normalizer: the `BertNormalizer` of a tokenizer.json, applied in `tokenizers`' order
/// (clean text, space out CJK ideographs, strip accents, lowercase).
struct BertNormalizer: Sendable, Equatable {
  /// Drop U+0000, U+FFFD and control characters; turn every whitespace character into U+0020.
  var cleanText: Bool
  /// Put a space on both sides of each CJK ideograph so that it becomes a word of its own.
  var handleChineseChars: Bool
  /// Decompose (NFD) and drop non-spacing marks. tokenizer.json's `null` means `lowercase`.
  var stripAccents: Bool
  /// Lowercase each scalar with its full, context-free mapping (Rust's `char::to_lowercase`).
  var lowercase: Bool

  /// A normalizer that leaves text unchanged (a tokenizer.json with `"normalizer": null`).
  static let identity = BertNormalizer(
    cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)

  /// Normalises a run of scalars.
  func normalize(_ input: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
    var output: [Unicode.Scalar] = []
    output.reserveCapacity(input.count + 8)
    var needsDecomposition = false
    for scalar in input {
      let value = scalar.value
      if cleanText {
        if value == 0 || value == 0xFFFD || BertCharacterClass.isControl(value) { continue }
        if BertCharacterClass.isWhitespace(value) {
          output.append(" ")
          continue
        }
      }
      if BertCharacterClass.mayNeedDecomposition(value) { needsDecomposition = true }
      if handleChineseChars && BertCharacterClass.isChineseCharacter(value) {
        output.append(" ")
        output.append(scalar)
        output.append(" ")
      } else {
        output.append(scalar)
      }
    }

    if stripAccents && needsDecomposition {
      // NFD must see the whole run, not scalar by scalar: it reorders combining marks.
      let decomposed = String(String.UnicodeScalarView(output)).decomposedStringWithCanonicalMapping
      output.removeAll(keepingCapacity: true)
      for scalar in decomposed.unicodeScalars where !BertCharacterClass.isNonspacingMark(scalar.value) {
        output.append(scalar)
      }
    }

    if lowercase {
      // Per scalar and without context, like Rust's `char::to_lowercase`: a final capital sigma
      // becomes σ, not ς, and İ becomes "i" + U+0307 (when accents are kept).
      var lowered: [Unicode.Scalar] = []
      lowered.reserveCapacity(output.count)
      for scalar in output {
        let value = scalar.value
        if value < 0x80 {
          if value >= 0x41 && value <= 0x5A {
            lowered.append(Unicode.Scalar(UInt8(value + 0x20)))
          } else {
            lowered.append(scalar)
          }
        } else {
          lowered.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
      }
      output = lowered
    }
    return output
  }
}

/// BERT's pre-tokenizer: split on whitespace (dropped), then isolate each punctuation scalar.
enum BertPreTokenizer {
  /// Calls `body` with the index range of each word of `text`, in order; empty words are skipped.
  static func forEachWord(
    in text: [Unicode.Scalar], _ range: Range<Int>, _ body: (Range<Int>) -> Void
  ) {
    var wordStart = range.lowerBound
    var index = range.lowerBound
    while index < range.upperBound {
      let value = text[index].value
      if BertCharacterClass.isWhitespace(value) {
        if wordStart < index { body(wordStart..<index) }
        wordStart = index + 1
      } else if BertCharacterClass.isPunctuation(value) {
        if wordStart < index { body(wordStart..<index) }
        body(index..<index + 1)
        wordStart = index + 1
      }
      index += 1
    }
    if wordStart < range.upperBound { body(wordStart..<range.upperBound) }
  }
}

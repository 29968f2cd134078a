// VeilModels owns everything about models that is public or plaintext: safetensors files,
// Hugging Face configs, tokenizers, the engine protocol the model graphs are written against,
// the Float64 reference engine, and the BERT and GPT-2 graphs themselves.
import VeilRing

/// Errors raised while reading model folders, configs, weights or tokenizer files.
/// Each case names the file and what was wrong with it, so the CLI can print one line.
public enum ModelError: Error, CustomStringConvertible, Equatable {
  case missingFile(path: String)
  case malformed(path: String, reason: String)
  case unsupported(path: String, reason: String)
  case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
  case missingTensor(path: String, tensor: String)

  public var description: String {
    switch self {
    case .missingFile(let path): return "\(path): no such file"
    case .malformed(let path, let reason): return "\(path): malformed: \(reason)"
    case .unsupported(let path, let reason): return "\(path): unsupported: \(reason)"
    case .shapeMismatch(let path, let tensor, let expected, let found):
      return "\(path): tensor '\(tensor)' has shape \(found), expected \(expected)"
    case .missingTensor(let path, let tensor): return "\(path): tensor '\(tensor)' is missing"
    }
  }
}

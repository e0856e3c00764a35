#include "retina/error.hpp"

#include <cstring>
#include <string>

namespace retina {

Error Error::system(std::string_view call, int err) {
  if (err < 0) err = -err;
  std::string msg(call);
  msg += ": ";
  msg += std::strerror(err);
  msg += " (errno ";
  msg += std::to_string(err);
  msg += ")";
  Kind kind = Kind::kSystem;
  // A kernel without the program or map type answers EINVAL/EOPNOTSUPP/ENOTSUP.
  if (err == EOPNOTSUPP || err == ENOSYS) kind = Kind::kUnsupported;
  return {kind, err, std::move(msg)};
}

Error Error::invalid(std::vector<Problem> problems) {
  std::string msg;
  for (const Problem& p : problems) {
    if (!msg.empty()) msg += '\n';
    msg += p.path.empty() ? p.message : p.path + ": " + p.message;
  }
  return {Kind::kInvalidArgument, 0, std::move(msg), std::move(problems)};
}

Error Error::wrap(std::string_view context) const {
  Error e = *this;
  std::string msg(context);
  msg += ": ";
  msg += message;
  e.message = std::move(msg);
  return e;
}

}  // namespace retina

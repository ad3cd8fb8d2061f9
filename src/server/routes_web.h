// The web UI: `GET /` (index.html) and `GET /web/{*file}`, served from the files built into the binary.
#pragma once

#include "server/router.h"

namespace easel::server {

void add_web_routes(Router& router);

}  // namespace easel::server

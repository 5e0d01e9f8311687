// What start() was asked for; copied into the drain when it starts.
#pragma once

namespace spanprof {

struct Config {
  int rate_hz = 100;
  bool gil_only = true;
  bool report_pid = false;
  bool report_thread_id = false;
  bool report_thread_name = false;
  int line_no = 0;
  bool cpu = true;         // keep the CPU profile
  bool wall = false;       // wall-clock sampling (wall.h) and the wall profile
  bool wall_tasks = true;  // with wall: asyncio tasks suspended on an await  // pyroscope-io
                           // LineNo: 0 current line, 1 function's first line, 2 no line
};

}  // namespace spanprof

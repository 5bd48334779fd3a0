// The portal's web client: one WebSocket to the portal (or, where
// websockets are blocked, AJAX long-polling), an output pane, a prompt line
// and an input line.
//
// Wire format (Evennia's JSON websocket protocol): every text frame (or
// AJAX answer) is a JSON array [cmdname, args, kwargs].
//   portal → page  ["text", [html], {}]     append to the output pane
//                  ["prompt", [html], {}]   replace the prompt line
//                  ["echo", [bool], {}]     false: password entry, true: normal
//                  ["portal", [text], {level: "info" | "error"}]  a notice
//                  anything else            kept in portalClient.oob
//   page → portal  ["text", [line], {}]     one entered line
//                  ["client_options", [], {screenwidth: cols, screenheight: rows}]
//                                           how many characters fit in the
//                                           output pane (as telnet's NAWS):
//                                           at every connect and after a resize
// The HTML in text and prompt comes from the portal's markup renderer,
// which escapes everything the game or a player wrote; everything else is
// inserted as text, never as HTML.
//
// The browser id is an HttpOnly cookie the portal set on GET /; the browser
// sends it with the WebSocket upgrade by itself.
//
// Closing: code 1000 with a reason is the portal (or game) closing on
// purpose (quit, kicked): show the reason and a Reconnect button. Any other
// close, including 1001 (portal restarting) and a close from this side,
// reconnects by itself after 1, 2, 4 ... 15 seconds. Over AJAX the same
// codes come in ["connection_close", [reason], {code}].

"use strict";

(function () {
  const MAX_LINES = 2000;
  const MAX_HISTORY = 100;
  const FIRST_DELAY_MS = 1000;
  const MAX_DELAY_MS = 15000;
  // A connection that stayed up this long starts the backoff over.
  const STABLE_MS = 10000;

  const output = document.getElementById("output");
  const prompt = document.getElementById("prompt");
  const form = document.getElementById("input-form");
  const input = document.getElementById("input");
  const statusLine = document.getElementById("status");
  const reconnectButton = document.getElementById("reconnect");

  let socket = null;
  let status = "connecting";
  let openedAt = 0;
  let delayMs = FIRST_DELAY_MS;
  let retryTimer = null;
  let countdownTimer = null;
  let passwordMode = false;
  const oob = {};

  // ---- output pane -------------------------------------------------------

  // Lines held by each block in the pane, oldest first, for the cap.
  const blockLines = [];
  let totalLines = 0;

  // Whether the pane follows new output: true unless the reader scrolled
  // up, so that output arriving, the prompt line appearing or the window
  // shrinking cannot lose the bottom. Scroll events arrive late (after the
  // layout may have changed again), so only a move above where the page
  // itself last scrolled to counts as the reader scrolling up.
  let following = true;
  let scrolledTo = 0;
  output.addEventListener("scroll", function () {
    if (output.scrollHeight - output.scrollTop - output.clientHeight < 8) {
      following = true;
    } else if (output.scrollTop < scrolledTo - 1) {
      following = false;
    }
  });
  function follow() {
    if (following) {
      output.scrollTop = output.scrollHeight;
      scrolledTo = output.scrollTop;
    }
  }
  new ResizeObserver(follow).observe(output);

  // Appends one block (a message) and keeps the pane at about MAX_LINES.
  function appendBlock(block, lines) {
    output.appendChild(block);
    blockLines.push(lines);
    totalLines += lines;
    while (totalLines > MAX_LINES && blockLines.length > 1) {
      const oldest = output.firstElementChild;
      const height = oldest.offsetHeight;
      output.removeChild(oldest);
      totalLines -= blockLines.shift();
      if (!following) {
        // Keep what the reader is looking at where it is.
        output.scrollTop -= height;
        scrolledTo = output.scrollTop;
      }
    }
    follow();
  }

  function countLines(text) {
    let lines = 1;
    for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) {
      lines += 1;
    }
    return lines;
  }

  // Game output: HTML already made safe by the portal.
  function showHtml(html) {
    const block = document.createElement("div");
    block.innerHTML = html;
    appendBlock(block, countLines(html));
  }

  // Plain text with a class: echoed input, portal notices.
  function showText(text, className) {
    const block = document.createElement("div");
    block.className = className;
    block.textContent = text;
    appendBlock(block, countLines(text));
  }

  // ---- status line -------------------------------------------------------

  function setStatus(state, text) {
    status = state;
    statusLine.textContent = text;
    statusLine.className = "status-" + state;
    reconnectButton.hidden = state !== "closed";
  }

  // ---- transports ----------------------------------------------------------
  //
  // A transport carries Evennia's [cmdname, args, kwargs] messages both
  // ways and reports to three handlers: onopen(), onmessage(text) with one
  // message's JSON text, and onclose(deliberate, reason) once, when it is
  // over (deliberate: the portal or game closed it on purpose, so the page
  // does not reconnect). Each has send(message) (false when not open),
  // close() (a close from this page, never deliberate) and kind.
  //
  // The websocket is tried first. Where it cannot open at all (a proxy or
  // network that breaks websockets), or the page is told so with
  // ?transport=ajax, the page uses AJAX long-polling instead: the same
  // messages over POSTs to /webclientdata (Evennia's format), the browser
  // id riding in the cookie as it does on the websocket.

  const AJAX_URL = new URL("webclientdata", window.location.href).href;
  // This tab's id among the browser's AJAX sessions.
  const tabId = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const askedForAjax = new URLSearchParams(window.location.search).get("transport") === "ajax";
  let useAjax = askedForAjax;
  // A websocket opened since the page loaded: a later failure is a blip,
  // not a network that blocks websockets.
  let websocketWorked = false;

  function socketUrl() {
    // Beside the page: ws://host:port/ws for a page at /, wss:// under https.
    const url = new URL("ws", window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function openWebSocket(handlers) {
    const ws = new WebSocket(socketUrl());
    let opened = false;
    let closedByPage = false;
    ws.onopen = function () {
      opened = true;
      websocketWorked = true;
      handlers.onopen();
    };
    ws.onmessage = function (event) {
      handlers.onmessage(event.data);
    };
    ws.onclose = function (event) {
      if (!opened && !websocketWorked && !closedByPage) {
        handlers.onunavailable();
        return;
      }
      const deliberate = !closedByPage && event.code === 1000 && event.reason !== "";
      handlers.onclose(deliberate, event.reason);
    };
    // An error is always followed by a close event, which decides.
    ws.onerror = function () {};
    return {
      kind: "websocket",
      send: function (message) {
        if (ws.readyState !== WebSocket.OPEN) {
          return false;
        }
        ws.send(JSON.stringify(message));
        return true;
      },
      close: function () {
        closedByPage = true;
        ws.close();
      },
    };
  }

  function openAjax(handlers) {
    let open = false;
    let over = false;
    const polling = new AbortController();
    // Input goes one request at a time, so it arrives in order.
    let sending = Promise.resolve();

    function post(fields, signal) {
      fields.cuid = tabId;
      return fetch(AJAX_URL, {
        method: "POST",
        body: new URLSearchParams(fields),
        credentials: "same-origin",
        cache: "no-store",
        signal: signal,
      }).then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      });
    }

    function end(deliberate, reason) {
      if (over) {
        return;
      }
      over = true;
      open = false;
      window.removeEventListener("pagehide", leave);
      polling.abort();
      handlers.onclose(deliberate, reason);
    }

    function receive() {
      post({ mode: "receive" }, polling.signal).then(function (text) {
        if (over) {
          return;
        }
        if (text !== "") {
          let message = null;
          try {
            message = JSON.parse(text);
          } catch (error) {
            message = null;
          }
          if (Array.isArray(message) && message[0] === "ajax_keepalive") {
            post({ mode: "keepalive" }).catch(function () {});
          } else if (Array.isArray(message) && message[0] === "connection_close") {
            const reason = Array.isArray(message[1]) ? String(message[1][0] || "") : "";
            const code = message[2] && message[2].code;
            end(code === 1000 && reason !== "", reason);
            return;
          } else {
            handlers.onmessage(text);
          }
        }
        receive();
      }, function () {
        end(false, "");
      });
    }

    // Leaving the page ends the session at once (not after the keepalive).
    function leave() {
      if (open) {
        navigator.sendBeacon(AJAX_URL, new URLSearchParams({ mode: "close", cuid: tabId }));
      }
    }

    post({ mode: "init", browserstr: "portal" }).then(function () {
      if (over) {
        return;
      }
      open = true;
      window.addEventListener("pagehide", leave);
      handlers.onopen();
      receive();
    }, function () {
      // The portal may just be down: next time, the websocket first again.
      useAjax = askedForAjax;
      end(false, "");
    });

    return {
      kind: "ajax",
      send: function (message) {
        if (!open) {
          return false;
        }
        const data = JSON.stringify(message);
        sending = sending.then(function () {
          return post({ mode: "input", data: data });
        }).catch(function () {
          end(false, "");
        });
        return true;
      },
      close: function () {
        if (open) {
          post({ mode: "close" }).catch(function () {});
        }
        end(false, "");
      },
    };
  }

  // Opens the transport to use now: the websocket, or AJAX where the
  // websocket cannot open.
  function openTransport(handlers) {
    if (!useAjax) {
      try {
        return openWebSocket(Object.assign({
          onunavailable: function () {
            useAjax = true;
            handlers.onreplace(openAjax(handlers));
          },
        }, handlers));
      } catch (error) {
        useAjax = true;
      }
    }
    return openAjax(handlers);
  }

  // ---- the connection ----------------------------------------------------

  function connect() {
    clearTimers();
    setStatus("connecting", "connecting…");
    let transport = null;
    const handlers = {
      onopen: function () {
        openedAt = Date.now();
        setPasswordMode(false);
        prompt.textContent = "";
        setStatus("connected", "connected");
        reportSize(true);
      },
      onmessage: function (text) {
        handleMessage(text);
      },
      onclose: function (deliberate, reason) {
        if (socket !== transport) {
          return;
        }
        socket = null;
        // The prompt and password entry belonged to that connection.
        prompt.textContent = "";
        setPasswordMode(false);
        if (deliberate) {
          setStatus("closed", "closed: " + reason);
          return;
        }
        if (openedAt && Date.now() - openedAt >= STABLE_MS) {
          delayMs = FIRST_DELAY_MS;
        }
        openedAt = 0;
        scheduleReconnect();
      },
      // The websocket could not open: AJAX takes its place.
      onreplace: function (replacement) {
        if (socket === transport) {
          transport = replacement;
          socket = replacement;
        }
      },
    };
    transport = openTransport(handlers);
    socket = transport;
  }

  function scheduleReconnect() {
    clearTimers();
    const wait = delayMs;
    delayMs = Math.min(delayMs * 2, MAX_DELAY_MS);
    const due = Date.now() + wait;
    const tick = function () {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setStatus("reconnecting", "reconnecting in " + seconds + "s…");
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
    retryTimer = setTimeout(connect, wait);
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    countdownTimer = null;
  }

  function handleMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (error) {
      return;
    }
    if (!Array.isArray(message) || typeof message[0] !== "string") {
      return;
    }
    const cmd = message[0];
    const args = Array.isArray(message[1]) ? message[1] : [];
    const kwargs = message[2] !== null && typeof message[2] === "object" ? message[2] : {};
    const first = args[0];
    switch (cmd) {
      case "text":
        if (typeof first === "string") {
          showHtml(first);
        }
        break;
      case "prompt":
        if (typeof first === "string") {
          prompt.innerHTML = first;
        }
        break;
      case "echo":
        setPasswordMode(first === false);
        break;
      case "portal":
        if (typeof first === "string") {
          const level = kwargs.level === "error" ? "error" : "info";
          showText(first, "notice notice-" + level);
        }
        break;
      default:
        oob[cmd] = { args: args, kwargs: kwargs };
    }
  }

  // Sends one [cmdname, args, kwargs] message; false when not connected.
  function sendCommand(cmd, args, kwargs) {
    return socket !== null && socket.send([cmd, args, kwargs]);
  }

  // Sends one line as a text command; false when not connected.
  function send(line) {
    return sendCommand("text", [String(line)], {});
  }

  // ---- screen size -------------------------------------------------------

  // The game is told how many characters fit in the output pane (columns
  // of the measured cell across, lines down), as a telnet client's NAWS
  // would tell it: at every connect, and again once a resize has settled.
  const RESIZE_SETTLE_MS = 250;
  const cell = document.getElementById("cell");
  // What this connection was last told, {cols, rows, paneWidth} (the
  // pane's width in pixels then), or null.
  let reportedSize = null;
  let resizeTimer = null;

  function measureScreen() {
    const box = cell.getBoundingClientRect();
    const charWidth = box.width / cell.textContent.length;
    const lineHeight = box.height;
    if (!(charWidth > 0) || !(lineHeight > 0)) {
      return null;
    }
    const style = window.getComputedStyle(output);
    const width = output.clientWidth - parseFloat(style.paddingLeft) -
      parseFloat(style.paddingRight);
    const height = output.clientHeight - parseFloat(style.paddingTop) -
      parseFloat(style.paddingBottom);
    return {
      cols: Math.max(1, Math.floor(width / charWidth)),
      rows: Math.max(1, Math.floor(height / lineHeight)),
      paneWidth: output.clientWidth,
    };
  }

  // Tells the game the size if it changed (always when `always`).
  function reportSize(always) {
    const size = measureScreen();
    if (!size) {
      return;
    }
    const same = reportedSize !== null && reportedSize.cols === size.cols &&
      reportedSize.rows === size.rows;
    if (same && !always) {
      return;
    }
    const kwargs = { screenwidth: size.cols, screenheight: size.rows };
    if (sendCommand("client_options", [], kwargs)) {
      reportedSize = size;
    }
  }

  function sizeChanged() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { reportSize(false); }, RESIZE_SETTLE_MS);
  }
  new ResizeObserver(sizeChanged).observe(output);

  // ---- input line and history --------------------------------------------

  const history = [];
  // Where Up/Down are in the history; history.length is the line being typed.
  let historyAt = 0;
  let draft = "";

  function setPasswordMode(on) {
    passwordMode = on;
    input.type = on ? "password" : "text";
  }

  function enter(line) {
    if (!send(line)) {
      showText("(not connected: \u201c" + (passwordMode ? "…" : line) + "\u201d was not sent)",
        "notice notice-error");
      return;
    }
    if (!passwordMode) {
      showText(line, "echo");
      if (line !== "" && history[history.length - 1] !== line) {
        history.push(line);
        if (history.length > MAX_HISTORY) {
          history.shift();
        }
      }
    }
    historyAt = history.length;
    draft = "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const line = input.value;
    input.value = "";
    enter(line);
  });

  input.addEventListener("keydown", function (event) {
    if (passwordMode || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) {
      return;
    }
    event.preventDefault();
    if (historyAt === history.length) {
      draft = input.value;
    }
    if (event.key === "ArrowUp") {
      historyAt = Math.max(0, historyAt - 1);
    } else {
      historyAt = Math.min(history.length, historyAt + 1);
    }
    input.value = historyAt === history.length ? draft : history[historyAt];
    input.setSelectionRange(input.value.length, input.value.length);
  });

  // Typing anywhere on the page types into the input line.
  document.addEventListener("keydown", function (event) {
    if (document.activeElement !== input && event.key.length === 1 &&
        !event.ctrlKey && !event.metaKey && !event.altKey) {
      input.focus();
    }
  });

  // Command links send their command; URL links open as links do.
  function onLinkClick(event) {
    const link = event.target.closest("a.cmd");
    if (!link) {
      return;
    }
    event.preventDefault();
    const cmd = link.getAttribute("data-cmd") || "";
    if (send(cmd)) {
      showText(cmd, "echo");
    }
    input.focus();
  }
  output.addEventListener("click", onLinkClick);
  prompt.addEventListener("click", onLinkClick);

  reconnectButton.addEventListener("click", function () {
    delayMs = FIRST_DELAY_MS;
    connect();
    input.focus();
  });

  // For debugging and browser tests.
  window.portalClient = {
    // The transport in use: .kind is "websocket" or "ajax"; .close() drops
    // it as a network blip would.
    get socket() { return socket; },
    get transport() { return socket ? socket.kind : null; },
    get status() { return status; },
    // The screen size last reported to the game, {cols, rows, paneWidth}.
    get screen() { return reportedSize; },
    oob: oob,
    send: send,
  };

  connect();
})();

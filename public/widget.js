/*! Kefu chat widget loader. Paste on your site:
 *  <script src="https://YOUR-KEFU-HOST/widget.js" data-site="SITE_KEY" async></script>
 * It draws a launcher button and loads the chat in an iframe from the Kefu server. */
(function () {
  "use strict";
  if (window.KefuWidget || document.getElementById("kefu-launcher")) return;

  var script = document.currentScript;
  if (!script || !script.getAttribute("data-site")) {
    var all = document.querySelectorAll("script[data-site]");
    for (var i = all.length - 1; i >= 0; i--) {
      if (/\/widget\.js(\?|#|$)/.test(all[i].src)) { script = all[i]; break; }
    }
  }
  if (!script) return;
  var site = script.getAttribute("data-site");
  var server;
  try { server = new URL(script.src, location.href).origin; } catch (e) { return; }
  if (!site || !server || server === "null") return;

  var Z = 2147483000;
  var BRAND = script.getAttribute("data-color") || "#4f46e5";
  var open = false, frame = null, unread = 0;
  var zh = /^zh/i.test(navigator.language || "");
  var T = zh ? { open: "打开在线客服", close: "关闭在线客服", title: "在线客服" }
             : { open: "Open chat", close: "Close chat", title: "Chat" };
  var ICON_CHAT = '<svg viewBox="0 0 24 24" width="28" height="28" fill="currentColor" aria-hidden="true"><path d="M12 3C6.5 3 2 6.8 2 11.5c0 2.4 1.2 4.6 3.1 6.1-.2 1.3-.8 2.6-1.8 3.6 2 0 3.8-.7 5.1-1.8 1.1.3 2.3.5 3.6.5 5.5 0 10-3.8 10-8.5S17.5 3 12 3z"/></svg>';
  var ICON_CLOSE = '<svg viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>';

  function css(el, rules) { el.style.cssText = "all:initial;box-sizing:border-box;" + rules; }
  function narrow() { return window.innerWidth < 480; }

  var button = document.createElement("button");
  button.id = "kefu-launcher";
  button.type = "button";
  button.setAttribute("aria-label", T.open);
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "kefu-frame");
  css(button, "position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;" +
    "background:" + BRAND + ";color:#fff;cursor:pointer;display:flex;align-items:center;" +
    "justify-content:center;box-shadow:0 6px 20px rgba(15,23,42,.25);z-index:" + Z + ";" +
    "transition:transform .15s ease;-webkit-tap-highlight-color:transparent;");
  button.innerHTML = ICON_CHAT;

  var badge = document.createElement("span");
  badge.id = "kefu-badge";
  badge.hidden = true;
  badge.setAttribute("aria-live", "polite");
  css(badge, "position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;" +
    "border-radius:10px;background:#ef4444;color:#fff;font:600 12px/20px system-ui,sans-serif;" +
    "text-align:center;display:none;box-shadow:0 0 0 2px #fff;");
  button.appendChild(badge);

  button.addEventListener("focus", function () { button.style.outline = "3px solid rgba(99,102,241,.5)"; button.style.outlineOffset = "3px"; });
  button.addEventListener("blur", function () { button.style.outline = "none"; });
  button.addEventListener("mouseenter", function () { button.style.transform = "scale(1.06)"; });
  button.addEventListener("mouseleave", function () { button.style.transform = "none"; });
  button.addEventListener("click", function () { toggle(); });

  function setBadge(n) {
    unread = Math.max(0, n | 0);
    badge.textContent = unread > 99 ? "99+" : String(unread);
    badge.hidden = unread === 0;
    badge.style.display = unread === 0 ? "none" : "block";
    button.setAttribute("aria-label", (open ? T.close : T.open) + (unread ? " (" + unread + ")" : ""));
  }

  function layout() {
    if (!frame) return;
    var base = "position:fixed;border:0;background:#fff;z-index:" + (Z + 1) + ";" +
      "transition:opacity .18s ease,transform .18s ease;color-scheme:light;";
    var shown = open ? "visibility:visible;opacity:1;transform:none;" :
      "visibility:hidden;opacity:0;transform:translateY(12px);pointer-events:none;";
    if (narrow()) {
      css(frame, base + shown + "left:0;top:0;width:100%;height:100%;border-radius:0;");
      button.style.display = open ? "none" : "flex";
    } else {
      css(frame, base + shown + "right:20px;bottom:88px;width:380px;height:600px;" +
        "max-height:calc(100vh - 108px);max-width:calc(100vw - 40px);border-radius:16px;" +
        "box-shadow:0 12px 48px rgba(15,23,42,.22);overflow:hidden;");
      button.style.display = "flex";
    }
  }

  function tell(kind) {
    if (frame && frame.contentWindow) frame.contentWindow.postMessage({ kefu: kind }, server);
  }

  function createFrame() {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.id = "kefu-frame";
    frame.title = T.title;
    frame.src = server + "/widget/frame?site=" + encodeURIComponent(site) +
      "&origin=" + encodeURIComponent(location.origin) +
      "&page=" + encodeURIComponent(location.href) +
      "&ref=" + encodeURIComponent(document.referrer);
    layout();
    document.body.appendChild(frame);
  }

  function setOpen(value) {
    open = value;
    createFrame();
    layout();
    button.innerHTML = open ? ICON_CLOSE : ICON_CHAT;
    button.appendChild(badge);
    button.setAttribute("aria-expanded", String(open));
    if (open) setBadge(0); else setBadge(unread);
    tell(open ? "opened" : "closed");
    if (open) { try { frame.focus(); } catch (e) { /* ignore */ } }
    else if (document.activeElement === frame || narrow()) button.focus();
  }
  function toggle() { setOpen(!open); }

  window.addEventListener("message", function (e) {
    if (e.origin !== server || !frame || e.source !== frame.contentWindow) return;
    var d = e.data;
    if (!d || typeof d !== "object") return;
    if (d.kefu === "unread") setBadge(open ? 0 : d.count);
    else if (d.kefu === "close") { if (open) setOpen(false); }
    else if (d.kefu === "ready") tell(open ? "opened" : "closed");
  });
  window.addEventListener("resize", layout);

  function mount() {
    if (!document.body) return setTimeout(mount, 50);
    document.body.appendChild(button);
    // Load the chat hidden once the page is done, so agent replies light up the badge.
    var later = function () { setTimeout(createFrame, 300); };
    if (document.readyState === "complete") later(); else window.addEventListener("load", later);
  }
  mount();

  window.KefuWidget = {
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    toggle: toggle
  };
})();

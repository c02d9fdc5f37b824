"use strict";
const view = document.getElementById("view");
const nav = document.getElementById("nav");
let currentUser = null;

const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? {"content-type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const errors = (data && data.errors) || [{message: "Something went wrong"}];
    throw errors;
  }
  return data;
}

function showErrors(errors) {
  return `<div class="errors"><ul>${errors.map((e) => `<li>${esc(e.message)}</li>`).join("")}</ul></div>`;
}

async function refreshUser() {
  const data = await api("GET", "/api/users/currentuser");
  currentUser = data.currentUser;
  nav.innerHTML = currentUser
    ? `<a href="#/tickets/new">Sell tickets</a> · <a href="#/orders">My orders</a> · <a href="#/signout">Sign out</a>`
    : `<a href="#/signup">Sign up</a> · <a href="#/signin">Sign in</a>`;
}

function authForm(title, path) {
  view.innerHTML = `<h1>${title}</h1><form id="form">
      <label>Email <input name="email" type="email" autocomplete="username"></label>
      <label>Password <input name="password" type="password" autocomplete="current-password"></label>
      <div id="errors"></div><button>${title}</button></form>`;
  document.getElementById("form").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await api("POST", path, {email: form.get("email"), password: form.get("password")});
      await refreshUser();
      location.hash = "#/";
    } catch (errors) {
      document.getElementById("errors").innerHTML = showErrors(errors);
    }
  };
}

async function listTickets() {
  const tickets = await api("GET", "/api/tickets");
  view.innerHTML = `<h1>Tickets</h1>${tickets.length === 0 ? `<p class="muted">Nothing for sale yet.</p>` : `
    <table><thead><tr><th>Title</th><th>Price</th><th></th></tr></thead><tbody>
    ${tickets.map((t) => `<tr><td>${esc(t.title)}</td><td>${esc(t.price)}</td>
      <td><a href="#/tickets/${esc(t.id)}">View</a></td></tr>`).join("")}
    </tbody></table>`}`;
}

function newTicket() {
  view.innerHTML = `<h1>Sell a ticket</h1><form id="form">
      <label>Title <input name="title"></label>
      <label>Price <input name="price" inputmode="decimal"></label>
      <div id="errors"></div><button>Sell</button></form>`;
  document.getElementById("form").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await api("POST", "/api/tickets", {title: form.get("title"), price: form.get("price")});
      location.hash = "#/";
    } catch (errors) {
      document.getElementById("errors").innerHTML = showErrors(errors);
    }
  };
}

async function showTicket(id) {
  const t = await api("GET", `/api/tickets/${encodeURIComponent(id)}`);
  view.innerHTML = `<div class="card"><h1>${esc(t.title)}</h1><p>Price: ${esc(t.price)}</p>
    ${t.orderId ? `<p class="muted">Reserved.</p>` : `<div id="errors"></div><button id="buy">Purchase</button>`}</div>`;
  const buy = document.getElementById("buy");
  if (buy) buy.onclick = async () => {
    try {
      const order = await api("POST", "/api/orders", {ticketId: t.id});
      location.hash = `#/orders/${order.id}`;
    } catch (errors) {
      document.getElementById("errors").innerHTML = showErrors(errors);
    }
  };
}

async function showOrder(id) {
  const [o, payment] = await Promise.all([
    api("GET", `/api/orders/${encodeURIComponent(id)}`),
    api("GET", "/api/payments/provider"),
  ]);
  const left = Math.max(0, Math.round((new Date(o.expiresAt) - new Date()) / 1000));
  view.innerHTML = `<div class="card"><h1>Order for ${esc(o.ticket.title)}</h1>
    <p>Status: <b>${esc(o.status)}</b> · Price: ${esc(o.ticket.price)}</p>
    ${o.status === "created" ? `<p class="muted">Expires in <span id="left">${left}</span> seconds.</p>
      <form id="pay"><label id="token-label">${payment.testTokens.length
          ? `Test card token (${esc(payment.provider)} provider: ${payment.testTokens.map(esc).join(", ")})`
          : "Card token (from Stripe.js)"}
        <input name="token" value="${esc(payment.testTokens[0] || "")}"></label>
        <button id="pay-button">Pay ${esc(o.ticket.price)}</button></form>
      <div id="errors"></div><button id="cancel">Cancel order</button>` : ""}</div>`;
  const countdown = document.getElementById("left");
  if (countdown) {
    const timer = setInterval(() => {
      if (!document.body.contains(countdown)) return clearInterval(timer);
      const now = Math.max(0, Math.round((new Date(o.expiresAt) - new Date()) / 1000));
      countdown.textContent = String(now);
      if (now === 0) clearInterval(timer);
    }, 1000);
  }
  const pay = document.getElementById("pay");
  if (pay) pay.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/api/payments", {orderId: o.id, token: pay.elements.token.value});
      location.hash = "#/orders";
    } catch (errors) {
      document.getElementById("errors").innerHTML = showErrors(errors);
    }
  };
  const cancel = document.getElementById("cancel");
  if (cancel) cancel.onclick = async () => {
    try {
      await api("DELETE", `/api/orders/${encodeURIComponent(o.id)}`);
      showOrder(o.id);
    } catch (errors) {
      document.getElementById("errors").innerHTML = showErrors(errors);
    }
  };
}

async function listOrders() {
  const orders = await api("GET", "/api/orders");
  view.innerHTML = `<h1>My orders</h1>${orders.length === 0 ? `<p class="muted">No orders yet.</p>` : `
    <table><thead><tr><th>Ticket</th><th>Status</th><th></th></tr></thead><tbody>
    ${orders.map((o) => `<tr><td>${esc(o.ticket.title)}</td><td>${esc(o.status)}</td>
      <td><a href="#/orders/${esc(o.id)}">View</a></td></tr>`).join("")}
    </tbody></table>`}`;
}

async function route() {
  const path = location.hash.replace(/^#/, "") || "/";
  try {
    if (path === "/signup") return authForm("Sign up", "/api/users/signup");
    if (path === "/signin") return authForm("Sign in", "/api/users/signin");
    if (path === "/signout") { await api("POST", "/api/users/signout"); await refreshUser(); location.hash = "#/"; return; }
    if (path === "/tickets/new") return newTicket();
    if (path.startsWith("/tickets/")) return await showTicket(path.slice("/tickets/".length));
    if (path === "/orders") return await listOrders();
    if (path.startsWith("/orders/")) return await showOrder(path.slice("/orders/".length));
    return await listTickets();
  } catch (errors) {
    view.innerHTML = showErrors(Array.isArray(errors) ? errors : [{message: String(errors)}]);
  }
}

window.addEventListener("hashchange", route);
refreshUser().then(route);

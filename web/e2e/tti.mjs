// Time to first interaction of the widget on /demo: from navigation start until the launcher
// is on screen and clickable, over N first visits (fresh browser context each: no cache).
//
//   node web/e2e/tti.mjs http://127.0.0.1:8080 [N=15]
//
// Two figures per load, both on the page's own clock (performance.now(), 0 = navigation start):
// "shown" is the first animation frame after the widget's launcher is in the document (it
// has its click handler from creation), "clicked" is when playwright's first click, issued as
// soon as the launcher is actionable, reached the page; the panel must open. For scale, the
// page's own DOMContentLoaded on the same clock.
import { chromium } from 'playwright-core';

const base = process.argv[2] || 'http://127.0.0.1:8080';
const n = Number(process.argv[3] || 15);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const shown = [], clicked = [], dcl = [];
try {
  for (let i = 0; i < n; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript(() => {
      new MutationObserver((_, obs) => {
        const host = document.getElementById('kefu-widget');
        if (host && host.shadowRoot && host.shadowRoot.querySelector('.launcher')) {
          obs.disconnect();
          requestAnimationFrame(() => { window.__shown = performance.now(); });
        }
      }).observe(document, { childList: true, subtree: true });
      window.addEventListener('click', () => { if (!window.__clicked) window.__clicked = performance.now(); }, true);
    });
    const page = await ctx.newPage();
    await page.goto(`${base}/demo`, { waitUntil: 'commit' });
    await page.locator('.launcher').click();
    await page.locator('.panel').waitFor({ state: 'visible' });
    const t = await page.evaluate(() => ({ shown: window.__shown, clicked: window.__clicked, dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd }));
    shown.push(t.shown);
    dcl.push(t.dcl);
    clicked.push(t.clicked);
    await ctx.close();
  }
} finally {
  await browser.close();
}
const fmt = (xs) => xs.map((x) => x.toFixed(0)).join(' ');
console.log(`loads: ${n}`);
console.log(`page DOMContentLoaded (ms): median ${median(dcl).toFixed(1)} [${fmt(dcl)}]`);
console.log(`launcher shown  (ms): median ${median(shown).toFixed(1)}, min ${Math.min(...shown).toFixed(1)}, max ${Math.max(...shown).toFixed(1)} [${fmt(shown)}]`);
console.log(`first click in  (ms): median ${median(clicked).toFixed(1)}, min ${Math.min(...clicked).toFixed(1)}, max ${Math.max(...clicked).toFixed(1)} [${fmt(clicked)}]`);

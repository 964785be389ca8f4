// A compact, embedded subset of the Public Suffix List, so that "*.co.uk" or ".github.io" is refused
// without a network fetch. It is a SUBSET: every single-label name is treated as a suffix, plus the
// common multi-label ones below. A suffix missing here is simply not refused; `allowPublicSuffixWildcard`
// lets a rule opt out when the refusal is wrong for it.

const US_STATES =
  'ak al ar as az ca co ct dc de fl ga gu hi ia id il in ks ky la ma md me mi mn mo ms mt nc nd ne nh nj nm nv ny oh ok or pa pr ri sc sd tn tx ut va vi vt wa wi wv wy';

const ICANN = [
  // second levels under country codes: "<sld>.<cc>"
  'uk: co org me ltd plc net sch ac gov nhs police',
  'au: com net org edu gov asn id',
  'nz: co net org govt ac school geek gen kiwi maori',
  'jp: co ne or ac ad ed go gr lg',
  'kr: co or ne go ac re',
  'cn: com net org gov edu ac',
  'hk: com net org edu gov',
  'tw: com net org edu gov',
  'sg: com net org edu gov',
  'my: com net org edu gov',
  'in: co net org firm gen ind ac edu res gov',
  'za: co org net gov edu ac web',
  'br: com net org gov edu art blog',
  'ar: com net org gob edu',
  'mx: com net org gob edu',
  'tr: com net org gov edu gen biz',
  'il: co org net ac gov muni',
  'id: co or ac go web net',
  'th: co in or ac go',
  'ph: com net org gov edu',
  'vn: com net org gov edu',
  'pk: com net org gov edu',
  'ng: com org gov edu',
  'ke: co or go ac',
  'eg: com gov edu',
  'sa: com gov edu',
  'ua: com net org gov in',
  'pl: com net org gov',
  'es: com org nom gob edu',
  'fr: asso com gouv nom',
  'it: gov edu',
  'at: co or gv ac',
  'gr: com gov edu org net',
  'pt: com gov edu org',
  'co: com net org gov edu',
  'pe: com gob edu org net',
  'cl: gob',
  'uy: com gub',
  've: com',
  `us: ${US_STATES}`,
];

const PRIVATE = [
  'github.io', 'githubusercontent.com', 'gitlab.io', 'bitbucket.io', 'codeberg.page', 'gitpod.io',
  'herokuapp.com', 'herokussl.com', 'vercel.app', 'now.sh', 'netlify.app', 'pages.dev', 'workers.dev', 'r2.dev',
  'cloudfront.net', 's3.amazonaws.com', 's3.us-east-1.amazonaws.com', 's3.us-east-2.amazonaws.com',
  's3.us-west-1.amazonaws.com', 's3.us-west-2.amazonaws.com', 's3.eu-west-1.amazonaws.com', 's3.eu-central-1.amazonaws.com',
  's3-website-us-east-1.amazonaws.com', 'elasticbeanstalk.com', 'awsapps.com', 'amplifyapp.com',
  'appspot.com', 'blogspot.com', 'firebaseapp.com', 'web.app', 'cloudfunctions.net', 'run.app',
  'azurewebsites.net', 'azurestaticapps.net', 'cloudapp.net', 'azure-mobile.net', 'azurecontainer.io',
  'blob.core.windows.net', 'web.core.windows.net',
  'fly.dev', 'onrender.com', 'up.railway.app', 'deno.dev', 'glitch.me', 'repl.co', 'surge.sh', 'readthedocs.io',
  'ngrok.io', 'ngrok.app', 'ngrok-free.app', 'duckdns.org', 'dyndns.org', 'ddns.net', 'myshopify.com', 'webflow.io',
  'pythonanywhere.com', 'ondigitalocean.app', 'digitaloceanspaces.com', 'global.ssl.fastly.net',
];

function build(): ReadonlySet<string> {
  const out = new Set<string>(PRIVATE);
  for (const line of ICANN) {
    const [tld, rest] = line.split(': ') as [string, string];
    for (const sld of rest.split(' ')) out.add(`${sld}.${tld}`);
  }
  return out;
}

const MULTI_LABEL = build();

/** True when `name` (normalised, A-label form) is a public suffix: any single label, or one of the embedded list. */
export function isPublicSuffix(name: string): boolean {
  return !name.includes('.') || MULTI_LABEL.has(name);
}

/** Number of multi-label suffixes embedded (for docs and tests). */
export const embeddedSuffixCount = MULTI_LABEL.size;

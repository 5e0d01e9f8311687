// The benchmark's comparison library ships no type declarations.
declare module "d3-flame-graph";
declare module "d3-selection";
